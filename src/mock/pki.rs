//! Keys and certificates the mock generates at start: its own CA, a server
//! certificate for 127.0.0.1/localhost, a client certificate for APNs
//! certificate auth, an APNs signing key (.p8) and a Google service account.
//! Generated per run so no secret, however fake, lives in the repository.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use super::{ApnsKey, ClientCert, MockError};

pub(super) struct Pki {
    pub ca_pem: String,
    pub server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub server_key: rustls::pki_types::PrivateKeyDer<'static>,
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    pub client: ClientCert,
}

fn err(what: &'static str) -> impl FnOnce(rcgen::Error) -> MockError {
    move |e| MockError::Keys(format!("{what}: {e}"))
}

pub(super) fn generate() -> Result<Pki, MockError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA params"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pushrelay mock provider CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err("CA key"))?)
        .map_err(err("CA certificate"))?;

    let server_key = KeyPair::generate().map_err(err("server key"))?;
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(err("server params"))?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "pushrelay mock provider");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params
        .signed_by(&server_key, &ca)
        .map_err(err("server certificate"))?;

    let client_key = KeyPair::generate().map_err(err("client key"))?;
    let mut client_params =
        CertificateParams::new(Vec::<String>::new()).map_err(err("client params"))?;
    client_params.distinguished_name.push(
        DnType::CommonName,
        "Apple Push Services: com.example.pushrelay",
    );
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params
        .signed_by(&client_key, &ca)
        .map_err(err("client certificate"))?;

    Ok(Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server_chain: vec![server_cert.der().clone(), ca.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        client: ClientCert {
            cert_pem: client_cert.pem(),
            key_pem: client_key.serialize_pem(),
        },
    })
}

/// An EC P-256 key as Apple issues them (.p8: PKCS#8 PEM), with the public
/// half for verifying provider JWTs.
pub(super) fn apns_key(team_id: &str, key_id: &str) -> Result<(ApnsKey, String), MockError> {
    let key = KeyPair::generate().map_err(err("APNs key"))?;
    Ok((
        ApnsKey {
            team_id: team_id.to_owned(),
            key_id: key_id.to_owned(),
            p8_pem: key.serialize_pem(),
        },
        key.public_key_pem(),
    ))
}

/// An RSA 2048 service-account key: (private PKCS#8 PEM, public PEM).
pub(super) fn service_account_key() -> Result<(String, String), MockError> {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
        .map_err(|e| MockError::Keys(format!("service account key: {e}")))?;
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| MockError::Keys(format!("service account key: {e}")))?
        .to_string();
    let public = rsa::RsaPublicKey::from(&key)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| MockError::Keys(format!("service account key: {e}")))?;
    Ok((private, public))
}

/// Apple-style identifier: 10 uppercase letters and digits.
pub(super) fn apple_id() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..10)
        .map(|_| CHARS[fastrand::usize(..CHARS.len())] as char)
        .collect()
}

//! Points pushrelay's real APNs and FCM clients at a running
//! [`MockProviders`](crate::mock::MockProviders): writes the mock's
//! credentials (CA, .p8 key, service account, client certificate) to files,
//! as the clients read them in production, and returns provider settings
//! for them. Used by `demo`, `mock-providers` (which the bench runs) and the
//! tests.

use std::path::{Path, PathBuf};

use crate::config::{ApnsSettings, FcmSettings};
use crate::mock::MockProviders;

/// Provider settings that reach the mock, and where the credentials are.
#[derive(Debug, Clone)]
pub struct MockRoutes {
    pub apns: ApnsSettings,
    pub fcm: FcmSettings,
    pub dir: PathBuf,
    /// PEM files for APNs certificate auth (instead of the .p8 key).
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

pub fn write_credentials(mock: &MockProviders, dir: &Path) -> std::io::Result<MockRoutes> {
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, text: &str| -> std::io::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let key = mock.apns_key();
    let ca_file = write("mock-ca.pem", mock.ca_pem())?;
    let key_file = write(&format!("AuthKey_{}.p8", key.key_id), &key.p8_pem)?;
    let service_account_file = write("service-account.json", &mock.service_account_json())?;
    let client_cert_file = write("apns-client-cert.pem", &mock.client_cert().cert_pem)?;
    let client_key_file = write("apns-client-key.pem", &mock.client_cert().key_pem)?;
    let base = mock.base_url();
    let sandbox = mock.sandbox_url();
    let apns: ApnsSettings = toml::from_str(&format!(
        r#"
        topic = {topic:?}
        team_id = {team:?}
        key_id = {kid:?}
        key_file = {key_file:?}
        production_url = {base:?}
        sandbox_url = {sandbox:?}
        ca_file = {ca_file:?}
        "#,
        topic = crate::mock::MockConfig::default().apns_topic,
        team = key.team_id,
        kid = key.key_id,
    ))
    .expect("mock APNs settings are valid TOML");
    let fcm: FcmSettings = toml::from_str(&format!(
        r#"
        service_account_file = {service_account_file:?}
        base_url = {base:?}
        ca_file = {ca_file:?}
        "#
    ))
    .expect("mock FCM settings are valid TOML");
    Ok(MockRoutes {
        apns,
        fcm,
        dir: dir.to_path_buf(),
        client_cert_file,
        client_key_file,
    })
}

impl MockRoutes {
    /// The `[apps.<app>]` section an operator can paste into config.toml.
    pub fn config_snippet(&self, app: &str) -> String {
        let a = &self.apns;
        let f = &self.fcm;
        format!(
            "[apps.{app}.ios]\nprovider = \"apns\"\ntopic = {:?}\nteam_id = {:?}\nkey_id = {:?}\nkey_file = {:?}\n\
             production_url = {:?}\nsandbox_url = {:?}\nca_file = {:?}\n\n\
             [apps.{app}.android]\nprovider = \"fcm\"\nservice_account_file = {:?}\nbase_url = {:?}\nca_file = {:?}\n",
            a.topic,
            a.team_id.as_deref().unwrap_or_default(),
            a.key_id.as_deref().unwrap_or_default(),
            a.key_file.as_deref().unwrap_or(Path::new("")),
            a.production_url,
            a.sandbox_url,
            a.ca_file.as_deref().unwrap_or(Path::new("")),
            f.service_account_file,
            f.base_url,
            f.ca_file.as_deref().unwrap_or(Path::new("")),
        )
    }
}

//! APNs authentication: the provider token (an ES256 JWT per signing key,
//! shared by every app and connection using the key, re-signed every
//! `token_refresh_mins`) and certificate auth from a PKCS#12 file.
//!
//! Apple refuses a key's new token when the previous one is less than 20
//! minutes old (`TooManyProviderTokenUpdates`); after that answer the token
//! stops re-signing ([`ProviderToken::too_many_updates`]) and keeps using
//! the token it has, which stays valid for an hour.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::ApnsSetupError;
use crate::providers::http;

/// The provider authentication token for one signing key, shared by every
/// connection and app using that key.
pub struct ProviderToken {
    pub(super) team_id: String,
    pub(super) key_id: String,
    key: jsonwebtoken::EncodingKey,
    refresh_after: Duration,
    current: RwLock<Option<(Arc<str>, Instant)>>,
    /// No re-signing before this (after TooManyProviderTokenUpdates).
    hold_until: Mutex<Option<Instant>>,
    signatures: AtomicU64,
}

/// Apple's minimum time between two tokens of one key.
pub const MIN_UPDATE_INTERVAL: Duration = Duration::from_secs(20 * 60);

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
}

impl ProviderToken {
    pub fn new(
        team_id: &str,
        key_id: &str,
        p8_pem: &[u8],
        refresh_after: Duration,
    ) -> Result<ProviderToken, jsonwebtoken::errors::Error> {
        Ok(ProviderToken {
            team_id: team_id.to_owned(),
            key_id: key_id.to_owned(),
            key: jsonwebtoken::EncodingKey::from_ec_pem(p8_pem)?,
            refresh_after,
            current: RwLock::new(None),
            hold_until: Mutex::new(None),
            signatures: AtomicU64::new(0),
        })
    }

    /// The current bearer value, signing a new one when it is due.
    pub fn bearer(&self) -> Arc<str> {
        if let Some((t, at)) = &*self.current.read().unwrap() {
            if at.elapsed() < self.refresh_after {
                return t.clone();
            }
        }
        let mut cur = self.current.write().unwrap();
        match &*cur {
            // Another caller refreshed it while we waited for the lock.
            Some((t, at)) if at.elapsed() < self.refresh_after => t.clone(),
            // Re-signing is on hold: the current token is still good for
            // up to an hour, a new one would be refused.
            Some((t, _)) if self.held() => t.clone(),
            _ => {
                let t = self.sign();
                *cur = Some((t.clone(), Instant::now()));
                t
            }
        }
    }

    /// APNs rejected `used` as expired: re-sign, unless someone already
    /// did. False when re-signing is on hold (the caller must not repeat).
    pub fn expired(&self, used: &Arc<str>) -> bool {
        if self.held() {
            return false;
        }
        let mut cur = self.current.write().unwrap();
        if cur.as_ref().is_some_and(|(t, _)| Arc::ptr_eq(t, used)) {
            *cur = Some((self.sign(), Instant::now()));
        }
        true
    }

    /// APNs answered TooManyProviderTokenUpdates: no new token until 20
    /// minutes after the current one was signed.
    pub fn too_many_updates(&self) {
        let signed = self.current.read().unwrap().as_ref().map(|(_, at)| *at);
        let until = signed.unwrap_or_else(Instant::now) + MIN_UPDATE_INTERVAL;
        let mut hold = self.hold_until.lock().unwrap();
        if hold.is_none_or(|h| h < until) {
            *hold = Some(until);
        }
    }

    fn held(&self) -> bool {
        self.hold_until
            .lock()
            .unwrap()
            .is_some_and(|h| Instant::now() < h)
    }

    /// Signatures made so far (a handful per hour, whatever the volume).
    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }

    fn sign(&self) -> Arc<str> {
        self.signatures.fetch_add(1, Ordering::Relaxed);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            iss: &self.team_id,
            iat: Utc::now().timestamp(),
        };
        let jwt = jsonwebtoken::encode(&header, &claims, &self.key)
            .expect("ES256 signing with a key that parsed cannot fail");
        format!("bearer {jwt}").into()
    }
}

/// The key and certificate chain of a PKCS#12 file, as PEM (what the TLS
/// client takes).
pub(super) fn pkcs12_to_pem(
    path: &std::path::Path,
    password: &str,
) -> Result<Vec<u8>, ApnsSetupError> {
    let bad = |cause: String| ApnsSetupError::BadPkcs12 {
        path: path.to_path_buf(),
        cause,
    };
    let der = http::read_file("apns pkcs12_file", path)?;
    let store = p12_keystore::KeyStore::from_pkcs12(
        &der,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| bad(e.to_string()))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| bad("it holds no private key with a certificate".into()))?;
    let mut pem = pem_block("PRIVATE KEY", chain.key().as_der());
    for cert in chain.certs() {
        pem.extend(pem_block("CERTIFICATE", cert.as_der()));
    }
    Ok(pem)
}

fn pem_block(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

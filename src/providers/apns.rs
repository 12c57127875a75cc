//! Apple Push Notification service over HTTP/2.
//!
//! Token auth: one ES256 provider JWT per signing key, shared by every app
//! and connection that uses the key, re-signed every `token_refresh_mins`
//! (Apple accepts tokens for an hour and answers 429
//! TooManyProviderTokenUpdates to tokens refreshed more often than every 20
//! minutes). When APNs says `ExpiredProviderToken`, the token is re-signed
//! once and the request repeated. Certificate auth (a PKCS#12 file as
//! exported from Keychain, or a PEM certificate + key) is the alternative. Every reason Apple documents is mapped to an outcome
//! in [`classify`]; the payload size is checked before anything is sent.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::http::{self, ClientOptions, HttpSetupError, Pool};
use super::{Accepted, Message, Provider, SendError};
use crate::devices::Environment;
use crate::retry::Priority;
use crate::templates::Rendered;

pub const MAX_PAYLOAD: usize = 4096;
pub const MAX_VOIP_PAYLOAD: usize = 5120;

#[derive(Debug, thiserror::Error)]
pub enum ApnsSetupError {
    #[error(transparent)]
    Http(#[from] HttpSetupError),
    #[error("apns key_file {path} is not an EC P-256 private key in PKCS#8 PEM (an Apple .p8 file): {cause}")]
    BadKey {
        path: PathBuf,
        cause: jsonwebtoken::errors::Error,
    },
    #[error("apns needs team_id + key_id + key_file (token auth), or pkcs12_file or certificate_file (certificate auth)")]
    NoAuth,
    #[error("apns pkcs12_file {path} cannot be read: {cause}; check the file and pkcs12_password")]
    BadPkcs12 { path: PathBuf, cause: String },
    #[error("apns token_refresh_mins is {0}; Apple requires between 20 and 60")]
    BadRefresh(u64),
}

/// `[apps.<name>.ios]` with `provider = "apns"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsSettings {
    /// The app's bundle id, sent as `apns-topic`.
    pub topic: String,
    /// `apns-push-type`: alert (default), background or voip.
    #[serde(default = "default_push_type")]
    pub push_type: String,
    /// Token auth: the 10-character team id, the key id and the .p8 file.
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub key_file: Option<PathBuf>,
    /// Certificate auth: a PEM file with the certificate (and key, unless
    /// `certificate_key_file` is given).
    pub certificate_file: Option<PathBuf>,
    pub certificate_key_file: Option<PathBuf>,
    /// Certificate auth from a PKCS#12 (.p12) file and its password (set
    /// the password through PUSHRELAY__APPS__<APP>__IOS__PKCS12_PASSWORD).
    pub pkcs12_file: Option<PathBuf>,
    #[serde(default)]
    pub pkcs12_password: Secret,
    /// Gateways for production and sandbox (development build) tokens; each
    /// device's `environment` picks one. Override both for a test server.
    #[serde(default = "default_production_url")]
    pub production_url: String,
    #[serde(default = "default_sandbox_url")]
    pub sandbox_url: String,
    /// An extra CA to trust (a test server's or a corporate proxy's).
    pub ca_file: Option<PathBuf>,
    /// HTTP/2 connections per gateway (each up to the server's stream limit).
    #[serde(default = "default_connections")]
    pub connections: u32,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Provider-token lifetime before re-signing, 20–60 minutes.
    #[serde(default = "default_refresh_mins")]
    pub token_refresh_mins: u64,
}

fn default_push_type() -> String {
    "alert".into()
}
fn default_production_url() -> String {
    "https://api.push.apple.com".into()
}
fn default_sandbox_url() -> String {
    "https://api.sandbox.push.apple.com".into()
}
fn default_connections() -> u32 {
    2
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_refresh_mins() -> u64 {
    40
}

/// The provider authentication token for one signing key, shared by every
/// connection and app using that key.
pub struct ProviderToken {
    team_id: String,
    key_id: String,
    key: jsonwebtoken::EncodingKey,
    refresh_after: Duration,
    current: RwLock<Option<(Arc<str>, Instant)>>,
    signatures: AtomicU64,
}

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
            _ => {
                let t = self.sign();
                *cur = Some((t.clone(), Instant::now()));
                t
            }
        }
    }

    /// APNs rejected `used` as expired: re-sign, unless someone already did.
    pub fn expired(&self, used: &Arc<str>) {
        let mut cur = self.current.write().unwrap();
        if cur.as_ref().is_some_and(|(t, _)| Arc::ptr_eq(t, used)) {
            *cur = Some((self.sign(), Instant::now()));
        }
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

/// A configured secret: `Debug` never shows it.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// The key and certificate chain of a PKCS#12 file, as PEM (what the TLS
/// client takes).
fn pkcs12_to_pem(path: &std::path::Path, password: &str) -> Result<Vec<u8>, ApnsSetupError> {
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

enum Auth {
    Token(Arc<ProviderToken>),
    Certificate,
}

pub struct Apns {
    auth: Auth,
    topic: String,
    push_type: String,
    production: (Pool, String),
    sandbox: (Pool, String),
}

impl Apns {
    /// `tokens` holds the provider tokens already made for other apps, so
    /// apps sharing a key share one token.
    pub fn new(
        s: &ApnsSettings,
        tokens: &mut Vec<Arc<ProviderToken>>,
    ) -> Result<Apns, ApnsSetupError> {
        let (auth, identity) = match (&s.team_id, &s.key_id, &s.key_file, &s.certificate_file) {
            _ if s.pkcs12_file.is_some() => {
                let path = s.pkcs12_file.as_deref().expect("checked");
                (
                    Auth::Certificate,
                    Some((pkcs12_to_pem(path, &s.pkcs12_password.0)?, path)),
                )
            }
            (Some(team), Some(key_id), Some(path), _) => {
                if !(20..=60).contains(&s.token_refresh_mins) {
                    return Err(ApnsSetupError::BadRefresh(s.token_refresh_mins));
                }
                let existing = tokens
                    .iter()
                    .find(|t| &t.team_id == team && &t.key_id == key_id)
                    .cloned();
                let token = match existing {
                    Some(t) => t,
                    None => {
                        let pem = http::read_file("apns key_file", path)?;
                        let t = Arc::new(
                            ProviderToken::new(
                                team,
                                key_id,
                                &pem,
                                Duration::from_secs(s.token_refresh_mins * 60),
                            )
                            .map_err(|cause| {
                                ApnsSetupError::BadKey {
                                    path: path.clone(),
                                    cause,
                                }
                            })?,
                        );
                        tokens.push(t.clone());
                        t
                    }
                };
                (Auth::Token(token), None)
            }
            (_, _, _, Some(cert)) => {
                let mut pem = http::read_file("apns certificate_file", cert)?;
                if let Some(key) = &s.certificate_key_file {
                    pem.push(b'\n');
                    pem.extend(http::read_file("apns certificate_key_file", key)?);
                }
                (Auth::Certificate, Some((pem, cert.as_path())))
            }
            _ => return Err(ApnsSetupError::NoAuth),
        };
        let pool = |identity: Option<(Vec<u8>, &std::path::Path)>| {
            Pool::new(ClientOptions {
                connections: s.connections,
                connect_timeout: Duration::from_millis(s.connect_timeout_ms),
                ca_file: s.ca_file.as_deref(),
                identity_pem: identity,
            })
        };
        Ok(Apns {
            production: (
                pool(identity.clone())?,
                s.production_url.trim_end_matches('/').to_owned(),
            ),
            sandbox: (
                pool(identity)?,
                s.sandbox_url.trim_end_matches('/').to_owned(),
            ),
            auth,
            topic: s.topic.clone(),
            push_type: s.push_type.clone(),
        })
    }
}

/// The APNs JSON payload of a notification: `aps` with the alert (or
/// `content-available` for background pushes) beside the custom data keys,
/// refused before sending when it exceeds Apple's limit.
pub fn payload(c: &Rendered, push_type: &str) -> Result<Vec<u8>, SendError> {
    let aps = if push_type == "background" {
        serde_json::json!({"content-available": 1})
    } else {
        let mut alert = serde_json::Map::new();
        if let Some(t) = &c.title {
            alert.insert("title".into(), t.as_str().into());
        }
        alert.insert("body".into(), c.body.as_str().into());
        serde_json::json!({"alert": alert, "sound": "default"})
    };
    let mut root = serde_json::Map::with_capacity(c.data.len() + 1);
    for (k, v) in &c.data {
        // Custom keys sit beside "aps", which is Apple's.
        if k != "aps" {
            root.insert(k.clone(), v.as_str().into());
        }
    }
    root.insert("aps".into(), aps);
    let body = serde_json::to_vec(&root).expect("JSON values serialize");
    let limit = if push_type == "voip" {
        MAX_VOIP_PAYLOAD
    } else {
        MAX_PAYLOAD
    };
    if body.len() > limit {
        return Err(SendError::Permanent {
            status: None,
            reason: format!(
                "PayloadTooLarge: the APNs payload is {} bytes, the limit is {limit}; not sent",
                body.len()
            ),
        });
    }
    Ok(body)
}

#[derive(Deserialize)]
struct ErrorBody {
    reason: String,
    timestamp: Option<i64>,
}

#[async_trait]
impl Provider for Apns {
    fn name(&self) -> &'static str {
        "apns"
    }

    async fn send(&self, msg: &Message<'_>) -> Result<Accepted, SendError> {
        // Bytes: cloned for free if the request is repeated after re-signing.
        let body = bytes::Bytes::from(payload(msg.content, &self.push_type)?);
        let (pool, base) = match msg.environment {
            Environment::Production => (&self.production.0, &self.production.1),
            Environment::Sandbox => (&self.sandbox.0, &self.sandbox.1),
        };
        let url = format!("{base}/3/device/{}", msg.token);
        let apns_id = uuid::Uuid::new_v4().to_string();
        // Background pushes must use priority 5 (Apple rejects 10).
        let priority = match (msg.priority, self.push_type.as_str()) {
            (_, "background") | (Priority::Bulk, _) => "5",
            (Priority::Urgent, _) => "10",
        };
        let mut resigned = false;
        loop {
            let mut req = pool
                .client()
                .post(&url)
                .header("apns-topic", &self.topic)
                .header("apns-push-type", &self.push_type)
                .header("apns-priority", priority)
                .header(
                    "apns-expiration",
                    msg.expires_at.timestamp().max(0).to_string(),
                )
                .header("apns-id", &apns_id)
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(k) = msg.collapse_key {
                req = req.header("apns-collapse-id", k);
            }
            let bearer = match &self.auth {
                Auth::Token(t) => {
                    let b = t.bearer();
                    req = req.header("authorization", &*b);
                    Some(b)
                }
                Auth::Certificate => None,
            };
            let resp = req.send().await.map_err(|e| SendError::Transient {
                status: None,
                reason: http::describe(e),
                retry_after: None,
            })?;
            let status = resp.status().as_u16();
            if status == 200 {
                let id = resp
                    .headers()
                    .get("apns-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .unwrap_or(apns_id);
                return Ok(Accepted {
                    provider_message_id: Some(id),
                    status: Some(200),
                });
            }
            let retry_after = http::retry_after(resp.headers());
            let text = resp.bytes().await.unwrap_or_default();
            let parsed: Option<ErrorBody> = serde_json::from_slice(&text).ok();
            let (reason, timestamp) = match parsed {
                Some(b) => (b.reason, b.timestamp),
                None => (String::from_utf8_lossy(&text).trim().to_owned(), None),
            };
            if reason == "ExpiredProviderToken" && !resigned {
                if let (Auth::Token(t), Some(b)) = (&self.auth, &bearer) {
                    t.expired(b);
                    resigned = true;
                    continue;
                }
            }
            return Err(classify(status, &reason, timestamp, retry_after));
        }
    }
}

/// Apple's documented answers → what happens next.
pub fn classify(
    status: u16,
    reason: &str,
    timestamp_ms: Option<i64>,
    retry_after: Option<Duration>,
) -> SendError {
    let status_code = Some(status);
    let reason_text = || reason.to_owned();
    match (status, reason) {
        (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => SendError::TokenDead {
            status: status_code,
            reason: reason_text(),
            since: timestamp_ms.and_then(DateTime::<Utc>::from_timestamp_millis),
        },
        (
            403,
            "BadCertificate"
            | "BadCertificateEnvironment"
            | "Forbidden"
            | "InvalidProviderToken"
            | "MissingProviderToken",
        ) => SendError::Config {
            status: status_code,
            reason: reason_text(),
        },
        // Re-signing did not help: the clock or the key setup is off, but
        // it may also be transient on Apple's side.
        (403, "ExpiredProviderToken") => SendError::Transient {
            status: status_code,
            reason: reason_text(),
            retry_after,
        },
        (429, _) | (500..=599, _) | (_, "IdleTimeout" | "Shutdown" | "ServiceUnavailable") => {
            SendError::Transient {
                status: status_code,
                reason: reason_text(),
                retry_after,
            }
        }
        // BadCollapseId, BadExpirationDate, BadMessageId, BadPriority,
        // BadTopic, DuplicateHeaders, InvalidPushType, MissingDeviceToken,
        // MissingTopic, PayloadEmpty, TopicDisallowed, 413 PayloadTooLarge,
        // 404 BadPath, 405 MethodNotAllowed: the request is wrong.
        _ => SendError::Permanent {
            status: status_code,
            reason: reason_text(),
        },
    }
}

//! Apple Push Notification service over HTTP/2.
//!
//! Token auth: one ES256 provider JWT per signing key, shared by every app
//! and connection that uses the key ([`auth`]). When APNs says
//! `ExpiredProviderToken`, the token is re-signed once and the request
//! repeated. Certificate auth (a PKCS#12 file as exported from Keychain, or
//! a PEM certificate + key) is the alternative. Every reason Apple
//! documents is mapped to an outcome in [`classify`]; the payload size is
//! checked before anything is sent ([`payload`]).

pub mod auth;
pub mod classify;
pub mod payload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

pub use self::auth::ProviderToken;
use self::classify::classify;
pub use self::payload::payload;
use super::http::{self, ClientOptions, HttpSetupError, Pool};
use super::{Accepted, Message, Provider, SendError};
use crate::config::ApnsSettings;
use crate::content::PushType;
use crate::model::{Environment, Priority};

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
    #[error("apns topic {topic:?} ends with {suffix:?}: give the bare bundle id ({bare:?}); the suffix is added per push type")]
    TopicHasSuffix {
        topic: String,
        suffix: &'static str,
        bare: String,
    },
    #[error("apns topic is empty: give the app's bundle id, e.g. com.example.bank")]
    NoTopic,
}

enum Auth {
    Token(Arc<ProviderToken>),
    Certificate,
}

pub struct Apns {
    auth: Auth,
    /// The bare bundle id.
    topic: String,
    push_type: PushType,
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
        check_topic(&s.topic)?;
        let (auth, identity) = match (&s.team_id, &s.key_id, &s.key_file, &s.certificate_file) {
            _ if s.pkcs12_file.is_some() => {
                let path = s.pkcs12_file.as_deref().expect("checked");
                (
                    Auth::Certificate,
                    Some((auth::pkcs12_to_pem(path, &s.pkcs12_password.0)?, path)),
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
            push_type: s.push_type,
        })
    }
}

/// The configured topic must be the bare bundle id: a suffixed one would
/// be suffixed again (`com.b.voip.voip`), and Apple answers that
/// `DeviceTokenNotForTopic` for every device.
fn check_topic(topic: &str) -> Result<(), ApnsSetupError> {
    if topic.trim().is_empty() {
        return Err(ApnsSetupError::NoTopic);
    }
    for p in PushType::ALL {
        let suffix = p.topic_suffix();
        if !suffix.is_empty() && topic.ends_with(suffix) {
            return Err(ApnsSetupError::TopicHasSuffix {
                topic: topic.to_owned(),
                suffix,
                bare: topic[..topic.len() - suffix.len()].to_owned(),
            });
        }
    }
    Ok(())
}

impl Apns {
    /// The push type of one message: its own, else the app's; an alert
    /// that is data-only goes as a background push.
    fn push_type(&self, msg: &Message<'_>) -> PushType {
        let o = &msg.content.options;
        match o.push_type.unwrap_or(self.push_type) {
            // Apple: a push with only content-available is a background push.
            PushType::Alert if o.is_data_only() => PushType::Background,
            p => p,
        }
    }
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
        let push_type = self.push_type(msg);
        let collapse_id = msg.collapse_id();
        let body = bytes::Bytes::from(payload(msg.content, push_type, &collapse_id)?);
        let topic = push_type.topic(&self.topic);
        let (pool, base) = match msg.environment {
            Environment::Production => (&self.production.0, &self.production.1),
            Environment::Sandbox => (&self.sandbox.0, &self.sandbox.1),
        };
        let url = format!("{base}/3/device/{}", msg.token);
        let apns_id = uuid::Uuid::new_v4().to_string();
        // Background pushes must use priority 5 (Apple rejects 10).
        let priority = match (msg.priority, push_type) {
            (_, PushType::Background) | (Priority::Bulk, _) => "5",
            (Priority::Urgent, _) => "10",
        };
        let expiration = msg.apns_expiration().to_string();
        let mut resigned = false;
        loop {
            let mut req = pool
                .client()
                .post(&url)
                .header("apns-topic", &topic)
                .header("apns-push-type", push_type.as_str())
                .header("apns-priority", priority)
                .header("apns-expiration", &expiration)
                .header("apns-id", &apns_id)
                // Always one: the collapse key, or the notification's id,
                // so a duplicate after an ambiguous failure shows once.
                .header("apns-collapse-id", &*collapse_id)
                .header("content-type", "application/json")
                .body(body.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_topic_must_be_the_bare_bundle_id() {
        assert!(check_topic("com.example.bank").is_ok());
        let err = check_topic("com.example.bank.voip").unwrap_err();
        assert_eq!(
            err.to_string(),
            "apns topic \"com.example.bank.voip\" ends with \".voip\": give the bare bundle id (\"com.example.bank\"); the suffix is added per push type"
        );
        assert!(check_topic("com.b.push-type.liveactivity").is_err());
        assert!(matches!(check_topic(" "), Err(ApnsSetupError::NoTopic)));
    }
}

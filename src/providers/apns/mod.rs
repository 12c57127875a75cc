//! Apple Push Notification service over HTTP/2.
//!
//! Token auth: one ES256 provider JWT per signing key, shared by every app
//! and connection that uses the key ([`auth`]). When APNs says
//! `ExpiredProviderToken`, the token is re-signed once and the request
//! repeated; if the token was signed moments ago, re-signing cannot help
//! and the answer is a configuration error naming the clock.
//! `TooManyProviderTokenUpdates` pauses the app briefly and holds the
//! key's re-signing. The sandbox gateway may use its own key. Certificate
//! auth (a PKCS#12 file as exported from Keychain, or a PEM certificate +
//! key) is the alternative. Every reason Apple
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
use crate::model::Environment;

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
    #[error("apns sandbox key needs both sandbox_key_id and sandbox_key_file (sandbox_team_id defaults to team_id)")]
    PartialSandboxKey,
    #[error("apns sandbox_key_id/sandbox_key_file/sandbox_team_id are for token auth; with a certificate, use one certificate valid for both environments")]
    SandboxKeyWithCertificate,
    #[error("apns topic {topic:?} ends with {suffix:?}: give the bare bundle id ({bare:?}); the suffix is added per push type")]
    TopicHasSuffix {
        topic: String,
        suffix: &'static str,
        bare: String,
    },
    #[error("apns topic is empty: give the app's bundle id, e.g. com.example.bank")]
    NoTopic,
}

#[derive(Clone)]
enum Auth {
    Token(Arc<ProviderToken>),
    Certificate,
}

/// One gateway (production or sandbox): its connections, URL and key.
struct Gateway {
    pool: Pool,
    base: String,
    auth: Auth,
}

pub struct Apns {
    /// The bare bundle id.
    topic: String,
    push_type: PushType,
    token_update_pause: Duration,
    production: Gateway,
    sandbox: Gateway,
}

/// The provider token for a key, shared with other apps using it.
fn provider_token(
    team: &str,
    key_id: &str,
    path: &std::path::Path,
    refresh: Duration,
    tokens: &mut Vec<Arc<ProviderToken>>,
) -> Result<Arc<ProviderToken>, ApnsSetupError> {
    if let Some(t) = tokens
        .iter()
        .find(|t| t.team_id == team && t.key_id == key_id)
    {
        return Ok(t.clone());
    }
    let pem = http::read_file("apns key_file", path)?;
    let t = Arc::new(
        ProviderToken::new(team, key_id, &pem, refresh).map_err(|cause| {
            ApnsSetupError::BadKey {
                path: path.to_path_buf(),
                cause,
            }
        })?,
    );
    tokens.push(t.clone());
    Ok(t)
}

impl Apns {
    /// `tokens` holds the provider tokens already made for other apps, so
    /// apps sharing a key share one token.
    pub fn new(
        s: &ApnsSettings,
        tokens: &mut Vec<Arc<ProviderToken>>,
    ) -> Result<Apns, ApnsSetupError> {
        check_topic(&s.topic)?;
        let refresh = Duration::from_secs(s.token_refresh_mins * 60);
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
                (
                    Auth::Token(provider_token(team, key_id, path, refresh, tokens)?),
                    None,
                )
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
        let sandbox_auth = match (&s.sandbox_key_id, &s.sandbox_key_file, &auth) {
            (None, None, _) if s.sandbox_team_id.is_none() => auth.clone(),
            (Some(key_id), Some(path), Auth::Token(_)) => {
                let team = s
                    .sandbox_team_id
                    .as_ref()
                    .or(s.team_id.as_ref())
                    .expect("token auth has a team_id");
                Auth::Token(provider_token(team, key_id, path, refresh, tokens)?)
            }
            (_, _, Auth::Token(_)) => return Err(ApnsSetupError::PartialSandboxKey),
            (_, _, Auth::Certificate) => return Err(ApnsSetupError::SandboxKeyWithCertificate),
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
            production: Gateway {
                pool: pool(identity.clone())?,
                base: s.production_url.trim_end_matches('/').to_owned(),
                auth,
            },
            sandbox: Gateway {
                pool: pool(identity)?,
                base: s.sandbox_url.trim_end_matches('/').to_owned(),
                auth: sandbox_auth,
            },
            topic: s.topic.clone(),
            push_type: s.push_type,
            token_update_pause: Duration::from_secs(s.token_update_pause_secs.max(1)),
        })
    }
}
/// The configured topic is the bare bundle id: suffixes follow the push type.
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
        let push_type = msg.content.options.push_type_or(self.push_type);
        let collapse_id = msg.collapse_id();
        // Bytes: cloned for free if the request is repeated after re-signing.
        let body = bytes::Bytes::from(payload(msg.content, push_type, &collapse_id)?);
        let topic = push_type.topic(&self.topic);
        let gw = match msg.environment {
            Environment::Production => &self.production,
            Environment::Sandbox => &self.sandbox,
        };
        let url = format!("{}/3/device/{}", gw.base, msg.token);
        let apns_id = uuid::Uuid::new_v4().to_string();
        let priority = payload::priority(msg.priority, push_type);
        let expiration = msg.apns_expiration().to_string();
        let mut resigned = false;
        loop {
            let bearer = match &gw.auth {
                Auth::Token(t) => Some(t.bearer()),
                Auth::Certificate => None,
            };
            let resp = gw
                .pool
                .send(|client| {
                    let mut req = client
                        .post(&url)
                        .header("apns-topic", &topic)
                        .header("apns-push-type", push_type.as_str())
                        .header("apns-priority", priority)
                        .header("apns-expiration", &expiration)
                        .header("apns-id", &apns_id)
                        // Always one: the collapse key, or the notification's
                        // id, so a duplicate after an ambiguous failure shows
                        // once.
                        .header("apns-collapse-id", &*collapse_id)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    if let Some(b) = &bearer {
                        req = req.header("authorization", &**b);
                    }
                    req
                })
                .await?;
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
                    endpoint_arn: None,
                });
            }
            let retry_after = http::retry_after(resp.headers());
            let text = resp.bytes().await.unwrap_or_default();
            let parsed: Option<ErrorBody> = serde_json::from_slice(&text).ok();
            let (reason, timestamp) = match parsed {
                Some(b) => (b.reason, b.timestamp),
                None => (String::from_utf8_lossy(&text).trim().to_owned(), None),
            };
            if let (Auth::Token(t), Some(b)) = (&gw.auth, &bearer) {
                match reason.as_str() {
                    "ExpiredProviderToken" if resigned => {
                        // The token was signed moments ago and cannot be
                        // stale: the clocks disagree by more than an hour.
                        return Err(SendError::config(Some(status), format!(
                                "ExpiredProviderToken for a provider token signed just now (key {}): \
                                 this host's clock is probably wrong; check NTP (timedatectl / chronyc tracking)",
                                t.key_id
                            )));
                    }
                    // Re-signed (unless re-signing is on hold): repeat once.
                    "ExpiredProviderToken" if t.expired(b) => {
                        resigned = true;
                        continue;
                    }
                    "TooManyProviderTokenUpdates" => {
                        t.too_many_updates();
                        return Err(SendError::Config {
                            status: Some(status),
                            reason: format!(
                                "TooManyProviderTokenUpdates: key {} was re-signed within Apple's 20 minutes; \
                                 keeping the current token and pausing {} s (several processes or hosts signing \
                                 with one key each re-sign on their own: that is fine at token_refresh_mins >= 20)",
                                t.key_id,
                                self.token_update_pause.as_secs()
                            ),
                            pause: Some(self.token_update_pause),
                        });
                    }
                    _ => {}
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

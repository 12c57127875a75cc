//! Apple Push Notification service over HTTP/2.
//!
//! Token auth: one ES256 provider JWT per signing key, shared by every app
//! and connection that uses the key ([`auth`]). When APNs says
//! `ExpiredProviderToken`, the token is re-signed once and the request
//! repeated; if the token was signed moments ago, re-signing cannot help
//! and the answer is a configuration error naming the clock.
//! `TooManyProviderTokenUpdates` pauses the app briefly and holds the
//! key's re-signing. The sandbox gateway may use its own key. Certificate auth (a PKCS#12 file as exported from Keychain, or
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
    #[error("apns sandbox key needs both sandbox_key_id and sandbox_key_file (sandbox_team_id defaults to team_id)")]
    PartialSandboxKey,
    #[error("apns sandbox_key_id/sandbox_key_file/sandbox_team_id are for token auth; with a certificate, use one certificate valid for both environments")]
    SandboxKeyWithCertificate,
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
    topic: String,
    push_type: String,
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
            push_type: s.push_type.clone(),
            token_update_pause: Duration::from_secs(s.token_update_pause_secs.max(1)),
        })
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
        let body = bytes::Bytes::from(payload(msg.content, &self.push_type)?);
        let gw = match msg.environment {
            Environment::Production => &self.production,
            Environment::Sandbox => &self.sandbox,
        };
        let url = format!("{}/3/device/{}", gw.base, msg.token);
        let apns_id = uuid::Uuid::new_v4().to_string();
        // Background pushes must use priority 5 (Apple rejects 10).
        let priority = match (msg.priority, self.push_type.as_str()) {
            (_, "background") | (Priority::Bulk, _) => "5",
            (Priority::Urgent, _) => "10",
        };
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
                        return Err(SendError::Config {
                            status: Some(status),
                            reason: format!(
                                "ExpiredProviderToken for a provider token signed just now (key {}): \
                                 this host's clock is probably wrong; check NTP (timedatectl / chronyc tracking)",
                                t.key_id
                            ),
                            pause: None,
                        });
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

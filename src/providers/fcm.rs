//! Firebase Cloud Messaging, HTTP v1 API.
//!
//! Auth: the service account signs an RS256 JWT assertion that its
//! `token_uri` exchanges for an OAuth access token. The token is cached and
//! refreshed shortly before it expires, by one caller at a time however many
//! sends are waiting (the rest wait for that one refresh). A send rejected
//! as UNAUTHENTICATED refreshes the token once and is repeated.
//!
//! Sends are spread by a per-project rate limiter (600,000/min by default,
//! Google's default quota). The message is mapped to proto3 JSON: string
//! `data` values, `android.ttl` as a duration string, and an `apns` block
//! for iOS devices reached through FCM. Errors come as google.rpc status
//! bodies whose FCM code is in `details`; [`classify`] maps them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::http::{self, ClientOptions, HttpSetupError, Pool};
use super::rate_limit::RateLimiter;
use super::{Accepted, Message, Provider, SendError};
use crate::devices::Platform;
use crate::retry::Priority;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
pub const MAX_PAYLOAD: usize = 4096;
/// FCM keeps messages for at most 28 days.
const MAX_TTL_SECS: i64 = 2_419_200;
/// Google: back off at least a minute after QUOTA_EXCEEDED.
const QUOTA_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum FcmSetupError {
    #[error(transparent)]
    Http(#[from] HttpSetupError),
    #[error("fcm service_account_file {path} is not a Google service-account JSON key: {cause}")]
    BadServiceAccount { path: PathBuf, cause: String },
}

/// `[apps.<name>.android]` (or `.ios`) with `provider = "fcm"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmSettings {
    /// The service-account JSON key downloaded from the Firebase console.
    pub service_account_file: PathBuf,
    /// Defaults to the service account's `project_id`.
    pub project_id: Option<String>,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// An extra CA to trust (a test server's or a corporate proxy's).
    pub ca_file: Option<PathBuf>,
    /// Sends per minute for the project, shared by every app using it.
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    #[serde(default = "default_connections")]
    pub connections: u32,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_base_url() -> String {
    "https://fcm.googleapis.com".into()
}
fn default_rate() -> u32 {
    600_000
}
fn default_connections() -> u32 {
    2
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}

#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    private_key: String,
    client_email: String,
    token_uri: String,
}

/// The OAuth access token of one service account.
pub struct AccessToken {
    client: reqwest::Client,
    token_uri: String,
    client_email: String,
    key: jsonwebtoken::EncodingKey,
    cached: RwLock<Option<(Arc<str>, Instant)>>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl AccessToken {
    fn fresh(&self) -> Option<Arc<str>> {
        match &*self.cached.read().unwrap() {
            Some((t, refresh_at)) if Instant::now() < *refresh_at => Some(t.clone()),
            _ => None,
        }
    }

    /// A valid bearer value; at most one refresh in flight.
    async fn bearer(&self) -> Result<Arc<str>, SendError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _one_at_a_time = self.refresh.lock().await;
        if let Some(t) = self.fresh() {
            return Ok(t); // refreshed while we waited
        }
        self.fetch().await
    }

    /// Forgets `used` after FCM rejected it, unless already replaced.
    fn rejected(&self, used: &Arc<str>) {
        let mut c = self.cached.write().unwrap();
        if c.as_ref().is_some_and(|(t, _)| Arc::ptr_eq(t, used)) {
            *c = None;
        }
    }

    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    async fn fetch(&self) -> Result<Arc<str>, SendError> {
        let now = Utc::now().timestamp();
        let claims = json!({
            "iss": self.client_email, "scope": SCOPE, "aud": self.token_uri,
            "iat": now, "exp": now + 3600,
        });
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )
        .map_err(|e| SendError::Config {
            status: None,
            reason: format!("cannot sign the OAuth assertion: {e}"),
        })?;
        let resp = self
            .client
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| SendError::Transient {
                status: None,
                reason: format!("OAuth token request {}", http::describe(e)),
                retry_after: None,
            })?;
        let status = resp.status().as_u16();
        let text = resp.bytes().await.unwrap_or_default();
        if status != 200 {
            let detail = String::from_utf8_lossy(&text)
                .chars()
                .take(300)
                .collect::<String>();
            let reason = format!("OAuth token endpoint answered {status}: {detail}");
            return Err(if status >= 500 || status == 429 {
                SendError::Transient {
                    status: Some(status),
                    reason,
                    retry_after: None,
                }
            } else {
                SendError::Config {
                    status: Some(status),
                    reason,
                }
            });
        }
        let t: TokenResponse = serde_json::from_slice(&text).map_err(|e| SendError::Transient {
            status: Some(status),
            reason: format!("unreadable OAuth token response: {e}"),
            retry_after: None,
        })?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        // Refresh before expiry: 5 minutes early, or halfway for short-lived tokens.
        let lifetime = Duration::from_secs(t.expires_in);
        let early = (lifetime / 2).min(Duration::from_secs(300));
        let bearer: Arc<str> = format!("Bearer {}", t.access_token).into();
        *self.cached.write().unwrap() = Some((bearer.clone(), Instant::now() + lifetime - early));
        Ok(bearer)
    }
}

pub struct Fcm {
    pool: Pool,
    send_url: String,
    token: Arc<AccessToken>,
    limiter: Arc<RateLimiter>,
}

/// What apps sharing a service account or a project share.
#[derive(Default)]
pub struct Shared {
    tokens: Vec<(String, Arc<AccessToken>)>,
    limiters: Vec<(String, Arc<RateLimiter>)>,
}

impl Shared {
    pub fn token_fetches(&self) -> u64 {
        self.tokens.iter().map(|(_, t)| t.fetches()).sum()
    }
}

impl Fcm {
    pub fn new(s: &FcmSettings, shared: &mut Shared) -> Result<Fcm, FcmSetupError> {
        let path = &s.service_account_file;
        let bad = |cause: String| FcmSetupError::BadServiceAccount {
            path: path.clone(),
            cause,
        };
        let raw = http::read_file("fcm service_account_file", path)?;
        let account: ServiceAccount =
            serde_json::from_slice(&raw).map_err(|e| bad(e.to_string()))?;
        let pool = Pool::new(ClientOptions {
            connections: s.connections,
            connect_timeout: Duration::from_millis(s.connect_timeout_ms),
            ca_file: s.ca_file.as_deref(),
            identity_pem: None,
        })?;
        let token = match shared
            .tokens
            .iter()
            .find(|(email, _)| *email == account.client_email)
        {
            Some((_, t)) => t.clone(),
            None => {
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
                    .map_err(|e| bad(format!("private_key: {e}")))?;
                let t = Arc::new(AccessToken {
                    client: pool.client().clone(),
                    token_uri: account.token_uri.clone(),
                    client_email: account.client_email.clone(),
                    key,
                    cached: RwLock::new(None),
                    refresh: tokio::sync::Mutex::new(()),
                    fetches: AtomicU64::new(0),
                });
                shared
                    .tokens
                    .push((account.client_email.clone(), t.clone()));
                t
            }
        };
        let project = s.project_id.clone().unwrap_or(account.project_id);
        let limiter = match shared.limiters.iter().find(|(p, _)| *p == project) {
            Some((_, l)) => l.clone(),
            None => {
                // A burst of one second's worth keeps short spikes smooth.
                let l = Arc::new(RateLimiter::per_minute(
                    s.rate_per_minute,
                    (s.rate_per_minute / 60).max(1),
                ));
                shared.limiters.push((project.clone(), l.clone()));
                l
            }
        };
        Ok(Fcm {
            send_url: format!(
                "{}/v1/projects/{project}/messages:send",
                s.base_url.trim_end_matches('/')
            ),
            pool,
            token,
            limiter,
        })
    }
}

/// The v1 message for one device.
pub fn message(msg: &Message<'_>) -> Result<Value, SendError> {
    let c = msg.content;
    let mut notification = Map::new();
    if let Some(t) = &c.title {
        notification.insert("title".into(), t.as_str().into());
    }
    notification.insert("body".into(), c.body.as_str().into());
    let data: Map<String, Value> = c
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().into()))
        .collect();
    let size = serde_json::to_vec(&notification)
        .map(|v| v.len())
        .unwrap_or(0)
        + serde_json::to_vec(&data).map(|v| v.len()).unwrap_or(0);
    if size > MAX_PAYLOAD {
        return Err(SendError::Permanent {
            status: None,
            reason: format!("message is too big: notification and data are {size} bytes, FCM allows {MAX_PAYLOAD}; not sent"),
        });
    }
    let ttl = (msg.expires_at - Utc::now())
        .num_seconds()
        .clamp(0, MAX_TTL_SECS);
    let mut m = Map::new();
    m.insert("token".into(), msg.token.into());
    m.insert("notification".into(), Value::Object(notification));
    if !data.is_empty() {
        m.insert("data".into(), Value::Object(data));
    }
    match msg.platform {
        Platform::Android => {
            let mut android = Map::new();
            let priority = match msg.priority {
                Priority::Urgent => "high",
                Priority::Bulk => "normal",
            };
            android.insert("priority".into(), priority.into());
            android.insert("ttl".into(), format!("{ttl}s").into());
            if let Some(k) = msg.collapse_key {
                android.insert("collapse_key".into(), k.into());
            }
            m.insert("android".into(), Value::Object(android));
        }
        Platform::Ios => {
            let mut headers = Map::new();
            let priority = match msg.priority {
                Priority::Urgent => "10",
                Priority::Bulk => "5",
            };
            headers.insert("apns-priority".into(), priority.into());
            headers.insert(
                "apns-expiration".into(),
                msg.expires_at.timestamp().max(0).to_string().into(),
            );
            if let Some(k) = msg.collapse_key {
                headers.insert("apns-collapse-id".into(), k.into());
            }
            m.insert("apns".into(), json!({ "headers": headers }));
        }
    }
    Ok(json!({ "message": m }))
}

#[derive(Deserialize)]
struct RpcBody {
    error: RpcStatus,
}

#[derive(Deserialize)]
struct RpcStatus {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<Value>,
}

#[derive(Deserialize)]
struct SendResponse {
    name: String,
}

#[async_trait]
impl Provider for Fcm {
    fn name(&self) -> &'static str {
        "fcm"
    }

    async fn send(&self, msg: &Message<'_>) -> Result<Accepted, SendError> {
        let body = bytes::Bytes::from(serde_json::to_vec(&message(msg)?).expect("JSON serializes"));
        self.limiter.acquire().await;
        let mut refreshed = false;
        loop {
            let bearer = self.token.bearer().await?;
            let resp = self
                .pool
                .client()
                .post(&self.send_url)
                .header("authorization", &*bearer)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| SendError::Transient {
                    status: None,
                    reason: http::describe(e),
                    retry_after: None,
                })?;
            let status = resp.status().as_u16();
            let retry_after = http::retry_after(resp.headers());
            let text = resp.bytes().await.map_err(|e| SendError::Transient {
                status: Some(status),
                reason: http::describe(e),
                retry_after: None,
            })?;
            if status == 200 {
                let name = serde_json::from_slice::<SendResponse>(&text)
                    .ok()
                    .map(|r| r.name);
                return Ok(Accepted {
                    provider_message_id: name,
                    status: Some(200),
                });
            }
            let rpc = serde_json::from_slice::<RpcBody>(&text)
                .ok()
                .map(|b| b.error);
            let code = rpc.as_ref().and_then(fcm_error_code);
            if status == 401 && code.is_none() && !refreshed {
                // Our access token was refused: get a new one, once.
                self.token.rejected(&bearer);
                refreshed = true;
                continue;
            }
            let (rpc_status, message) = rpc.map(|r| (r.status, r.message)).unwrap_or_default();
            return Err(classify(
                status,
                code.as_deref(),
                &rpc_status,
                &message,
                retry_after,
            ));
        }
    }
}

fn fcm_error_code(s: &RpcStatus) -> Option<String> {
    s.details.iter().find_map(|d| {
        let ty = d.get("@type")?.as_str()?;
        ty.ends_with("google.firebase.fcm.v1.FcmError")
            .then(|| d.get("errorCode")?.as_str().map(str::to_owned))
            .flatten()
    })
}

/// Google's documented answers → what happens next.
pub fn classify(
    status: u16,
    code: Option<&str>,
    rpc_status: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> SendError {
    let s = Some(status);
    let reason = || {
        let name = code.unwrap_or(if rpc_status.is_empty() {
            "error"
        } else {
            rpc_status
        });
        if message.is_empty() {
            name.to_owned()
        } else {
            format!("{name}: {message}")
        }
    };
    match code {
        Some("UNREGISTERED") => SendError::TokenDead {
            status: s,
            reason: reason(),
            since: None,
        },
        // The token belongs to another Firebase project: dead for this app.
        Some("SENDER_ID_MISMATCH") => SendError::TokenDead {
            status: s,
            reason: reason(),
            since: None,
        },
        Some("INVALID_ARGUMENT") if message.to_ascii_lowercase().contains("registration token") => {
            SendError::TokenDead {
                status: s,
                reason: reason(),
                since: None,
            }
        }
        Some("INVALID_ARGUMENT") => SendError::Permanent {
            status: s,
            reason: reason(),
        },
        // The APNs or web-push credentials stored in Firebase are wrong.
        Some("THIRD_PARTY_AUTH_ERROR") => SendError::Config {
            status: s,
            reason: reason(),
        },
        Some("QUOTA_EXCEEDED") => SendError::Transient {
            status: s,
            reason: reason(),
            retry_after: Some(retry_after.unwrap_or(QUOTA_BACKOFF).max(QUOTA_BACKOFF)),
        },
        Some("UNAVAILABLE" | "INTERNAL") => SendError::Transient {
            status: s,
            reason: reason(),
            retry_after,
        },
        _ => match status {
            // Our credentials or project are wrong (token refresh did not help).
            401 | 403 | 404 => SendError::Config {
                status: s,
                reason: reason(),
            },
            429 => SendError::Transient {
                status: s,
                reason: reason(),
                retry_after: Some(retry_after.unwrap_or(QUOTA_BACKOFF).max(QUOTA_BACKOFF)),
            },
            500..=599 => SendError::Transient {
                status: s,
                reason: reason(),
                retry_after,
            },
            _ => SendError::Permanent {
                status: s,
                reason: reason(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Environment;
    use crate::templates::Rendered;

    fn msg<'a>(platform: Platform, content: &'a Rendered) -> Message<'a> {
        Message {
            platform,
            token: "tok",
            environment: Environment::Production,
            priority: Priority::Bulk,
            collapse_key: Some("k"),
            expires_at: Utc::now() + chrono::Duration::seconds(600),
            content,
        }
    }

    #[test]
    fn ios_devices_through_fcm_get_an_apns_block() {
        let content = Rendered {
            title: None,
            body: "b".into(),
            data: vec![],
        };
        let m = message(&msg(Platform::Ios, &content)).unwrap();
        let headers = &m["message"]["apns"]["headers"];
        assert_eq!(headers["apns-priority"], "5");
        assert_eq!(headers["apns-collapse-id"], "k");
        assert!(m["message"].get("android").is_none() && m["message"].get("data").is_none());
    }

    #[test]
    fn android_ttl_is_a_duration_string_of_the_remaining_lifetime() {
        let content = Rendered {
            title: Some("t".into()),
            body: "b".into(),
            data: vec![("n".into(), "1".into())],
        };
        let m = message(&msg(Platform::Android, &content)).unwrap();
        let a = &m["message"]["android"];
        assert_eq!(a["priority"], "normal");
        let ttl: i64 = a["ttl"]
            .as_str()
            .unwrap()
            .strip_suffix('s')
            .unwrap()
            .parse()
            .unwrap();
        assert!((590..=600).contains(&ttl));
        assert_eq!(m["message"]["data"]["n"], "1");
    }

    #[test]
    fn quota_exceeded_backs_off_at_least_a_minute() {
        let e = classify(
            429,
            Some("QUOTA_EXCEEDED"),
            "RESOURCE_EXHAUSTED",
            "",
            Some(Duration::from_secs(5)),
        );
        assert!(
            matches!(e, SendError::Transient { retry_after: Some(d), .. } if d == QUOTA_BACKOFF)
        );
    }
}

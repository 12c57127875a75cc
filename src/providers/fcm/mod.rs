//! Firebase Cloud Messaging, HTTP v1 API.
//!
//! Auth ([`auth`]): a service account's OAuth access token, refreshed by one
//! caller at a time. A send rejected as UNAUTHENTICATED refreshes the token
//! once and is repeated. Sends are spread by a per-project rate limiter
//! (600,000/min by default, Google's default quota); a 429 QUOTA_EXCEEDED
//! halves the project's rate until its Retry-After. Processes on one
//! database share each project's rate and its slowdowns
//! ([`Shared::sync_quota`]). The message mapping is
//! in [`message`], the answers' meaning in [`classify`].

pub mod auth;
pub mod classify;
pub mod message;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use self::auth::{AccessToken, ServiceAccount};
use self::classify::{classify, fcm_error_code, RpcBody};
pub use self::message::message;
use super::http::{self, ClientOptions, HttpSetupError, Pool};
use super::rate_limit::RateLimiter;
use super::{Accepted, Message, Provider, SendError};
use crate::config::FcmSettings;

#[derive(Debug, thiserror::Error)]
pub enum FcmSetupError {
    #[error(transparent)]
    Http(#[from] HttpSetupError),
    #[error("fcm service_account_file {path} is not a Google service-account JSON key: {cause}")]
    BadServiceAccount { path: PathBuf, cause: String },
}

/// `[apps.<name>.android]` (or `.ios`) with `provider = "fcm"`.
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

    pub fn quota_slowdown(&self, project: &str) -> Option<Duration> {
        let (_, l) = self.limiters.iter().find(|(p, _)| p == project)?;
        l.slowed_for()
    }

    /// One round of sharing each project's quota with the other processes
    /// on the database: this process's QUOTA_EXCEEDED slowdowns go out,
    /// the others' come in, and each limiter takes 1/live of its rate.
    pub async fn sync_quota(
        &self,
        pool: &sqlx::PgPool,
        live_within: Duration,
    ) -> Result<(), sqlx::Error> {
        if self.limiters.is_empty() {
            return Ok(());
        }
        let slowdowns: Vec<(String, f64)> = self
            .limiters
            .iter()
            .map(|(p, l)| (p.clone(), l.slowed_for().map_or(0.0, |d| d.as_secs_f64())))
            .collect();
        for q in crate::store::quota::sync(pool, live_within, &slowdowns).await? {
            let Some((_, l)) = self.limiters.iter().find(|(p, _)| *p == q.project) else {
                continue;
            };
            l.set_share(q.live.clamp(1, u32::MAX as i64) as u32);
            if q.slowed_secs > 0.0 {
                l.slow_down(tokio::time::Instant::now() + Duration::from_secs_f64(q.slowed_secs));
            }
        }
        Ok(())
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
                let t = Arc::new(
                    AccessToken::new(pool.client().clone(), &account)
                        .map_err(|e| bad(format!("private_key: {e}")))?,
                );
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
                let l = Arc::new(
                    RateLimiter::per_minute(s.rate_per_minute, (s.rate_per_minute / 60).max(1))
                        .with_bulk_share(s.bulk_share),
                );
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

#[derive(Deserialize)]
struct SendResponse {
    name: String,
}

#[async_trait]
impl Provider for Fcm {
    fn name(&self) -> &'static str {
        "fcm"
    }

    async fn admit(&self, priority: crate::model::Priority) {
        self.limiter.acquire(priority).await;
    }

    async fn send(&self, msg: &Message<'_>) -> Result<Accepted, SendError> {
        let body = bytes::Bytes::from(serde_json::to_vec(&message(msg)?).expect("JSON serializes"));
        let mut refreshed = false;
        loop {
            let bearer = self.token.bearer().await?;
            let resp = self
                .pool
                .send(|client| {
                    client
                        .post(&self.send_url)
                        .header("authorization", &*bearer)
                        .header("content-type", "application/json")
                        .body(body.clone())
                })
                .await?;
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
                    endpoint_arn: None,
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
            if status == 429 {
                // Someone else shares the project's quota: every send of
                // this project slows down, in every process (Google: at
                // least a minute when it does not say how long).
                let wait = retry_after.unwrap_or(classify::QUOTA_BACKOFF);
                self.limiter.slow_down(tokio::time::Instant::now() + wait);
                metrics::counter!("pushrelay_fcm_quota_exceeded_total").increment(1);
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

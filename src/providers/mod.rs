//! The provider interface: what dispatch hands a push provider and what a
//! provider must answer.
//!
//! A provider turns one rendered [`Message`] into one request to APNs, FCM or
//! SNS and classifies the answer into a [`SendError`] variant that says what
//! happens next (retry, give up, kill the token, pause the app). The retry
//! decision itself is made by the worker's retry policy, never by a provider.
//!
//! [`Providers`] maps each configured app and platform to its provider.

pub mod apns;
pub mod fcm;
mod http;
mod rate_limit;
pub mod simulator;
pub mod sns;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{ProviderSettings, Settings};
use crate::model::{AttemptOutcome, Environment, Platform, Priority};
use crate::templates::Rendered;

/// One push to one device, ready to be mapped onto a provider's wire format.
#[derive(Debug)]
pub struct Message<'a> {
    pub platform: Platform,
    pub token: &'a str,
    pub environment: Environment,
    pub priority: Priority,
    pub collapse_key: Option<&'a str>,
    /// The notification's id: the stable `apns-collapse-id` / Android `tag`
    /// of a message without a collapse key, the same on every retry.
    pub notification_id: uuid::Uuid,
    pub expires_at: DateTime<Utc>,
    /// `ttl_seconds = 0`: deliver now or never (`apns-expiration: 0`,
    /// FCM `ttl: "0s"`).
    pub now_or_never: bool,
    pub content: &'a Rendered,
    pub device_id: i64,
    /// SNS: the device's platform endpoint, when it has one.
    pub endpoint_arn: Option<&'a str>,
    /// SNS: the endpoint may no longer match the device (it registered
    /// again, its token was replaced, the ARN was imported) and is checked
    /// before publishing.
    pub endpoint_stale: bool,
}

impl Message<'_> {
    /// `apns-collapse-id` (and the Android tag): the collapse key, or one
    /// derived from the notification so that a device receiving a retry
    /// of a send whose answer was lost (a timeout, a dropped connection)
    /// shows one notification, not two.
    pub fn collapse_id(&self) -> std::borrow::Cow<'_, str> {
        match self.collapse_key {
            Some(k) => k.into(),
            None => self.notification_id.to_string().into(),
        }
    }

    /// The time left to live in whole seconds (0 for now-or-never).
    pub fn ttl_seconds(&self) -> i64 {
        if self.now_or_never {
            0
        } else {
            (self.expires_at - Utc::now()).num_seconds().max(0)
        }
    }

    /// `apns-expiration`: the expiry as a UNIX time, or 0 ("deliver once,
    /// do not store") for a now-or-never message.
    pub fn apns_expiration(&self) -> i64 {
        if self.now_or_never {
            0
        } else {
            self.expires_at.timestamp().max(0)
        }
    }
}

/// A provider's answer when the push was not accepted. Each variant says
/// what happens next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Try again later (timeouts, resets, 429, 5xx), no sooner than
    /// `retry_after` when the provider said so.
    #[error("transient failure{}: {reason}", status_suffix(*.status))]
    Transient {
        status: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The message is wrong; sending it again cannot succeed.
    #[error("rejected{}: {reason}", status_suffix(*.status))]
    Permanent { status: Option<u16>, reason: String },
    /// The device token is no longer valid: invalidate the device. `since`
    /// is when the provider says it became invalid (APNs 410 `timestamp`).
    #[error("token no longer valid{}: {reason}", status_suffix(*.status))]
    TokenDead {
        status: Option<u16>,
        reason: String,
        since: Option<DateTime<Utc>>,
    },
    /// Our credentials or provider setup are wrong: pause this app's sends
    /// and alert; the delivery keeps its attempt. `pause` overrides the
    /// configured pause (a brief one for a rate of token updates, say).
    #[error("provider configuration error{}: {reason}", status_suffix(*.status))]
    Config {
        status: Option<u16>,
        reason: String,
        pause: Option<Duration>,
    },
    /// The connection dropped after the request went out: the provider may
    /// or may not have processed it. Retried shortly without spending an
    /// attempt, and not held against the provider by the circuit breaker.
    #[error("connection lost: {reason}")]
    ConnectionLost { reason: String },
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl SendError {
    /// A configuration error that pauses for the configured time.
    pub fn config(status: Option<u16>, reason: impl Into<String>) -> SendError {
        SendError::Config {
            status,
            reason: reason.into(),
            pause: None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Transient { status, .. }
            | SendError::Permanent { status, .. }
            | SendError::TokenDead { status, .. }
            | SendError::Config { status, .. } => *status,
            SendError::ConnectionLost { .. } => None,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            SendError::Transient { reason, .. }
            | SendError::Permanent { reason, .. }
            | SendError::TokenDead { reason, .. }
            | SendError::Config { reason, .. }
            | SendError::ConnectionLost { reason } => reason,
        }
    }

    /// The outcome recorded in the attempt's receipt.
    pub fn outcome(&self) -> AttemptOutcome {
        match self {
            SendError::Transient { .. } | SendError::ConnectionLost { .. } => {
                AttemptOutcome::Transient
            }
            SendError::Permanent { .. } => AttemptOutcome::Permanent,
            SendError::TokenDead { .. } => AttemptOutcome::TokenDead,
            SendError::Config { .. } => AttemptOutcome::ConfigError,
        }
    }
}

/// What a provider returns for an accepted push.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Accepted {
    /// The provider's id for the message (`apns-id`, FCM message name).
    pub provider_message_id: Option<String>,
    pub status: Option<u16>,
    /// SNS: the device's platform endpoint, when the send created or
    /// repaired it (stored on the device by the completer).
    pub endpoint_arn: Option<String>,
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Recorded in every attempt (`apns`, `fcm`, `simulator`).
    fn name(&self) -> &'static str;

    /// Waits until one more message may go (a provider's rate limit). The
    /// caller calls it before every `send`, outside the send timeout:
    /// waiting for a quota says nothing about the provider being slow, and
    /// must not turn a backlog into timed-out attempts. Bulk sends may be
    /// held to a share of the rate, so alerts keep the rest.
    async fn admit(&self, _priority: crate::model::Priority) {}

    /// Sends one message. Must not retry on its own: the caller records
    /// every attempt and schedules retries. Timeouts are the caller's too.
    async fn send(&self, msg: &Message<'_>) -> Result<Accepted, SendError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("apps.{app}.{platform}: {source}")]
    Apns {
        app: String,
        platform: Platform,
        source: apns::ApnsSetupError,
    },
    #[error("apps.{app}.{platform}: {source}")]
    Fcm {
        app: String,
        platform: Platform,
        source: fcm::FcmSetupError,
    },
    #[error("apps.{app}.{platform}: {source}")]
    Sns {
        app: String,
        platform: Platform,
        source: sns::SnsSetupError,
    },
}

/// The provider for each configured (app, platform).
#[derive(Clone, Default)]
pub struct Providers {
    /// Per app, the provider for each platform (indexed by `Platform::index`).
    routes: HashMap<String, [Option<Arc<dyn Provider>>; 2]>,
    simulator: Option<Arc<simulator::Simulator>>,
    apns_tokens: Arc<Vec<Arc<apns::ProviderToken>>>,
    fcm_shared: Arc<fcm::Shared>,
    sns: sns::Endpoints,
}

impl Providers {
    /// Builds every provider the settings name, reading their credentials.
    /// Apps routed to the simulator share one instance (one fault script,
    /// one set of counters); apps sharing an APNs key share its provider
    /// token; apps sharing a service account or an FCM project share its
    /// access token and rate limit.
    pub fn from_settings(settings: &Settings) -> Result<Providers, ProviderSetupError> {
        let mut providers = Providers::default();
        let mut apns_tokens = Vec::new();
        let mut fcm_shared = fcm::Shared::default();
        let sns_routes = sns::Endpoints::from_settings(settings)?;
        for (app, app_settings) in &settings.apps {
            for &platform in Platform::ALL {
                let Some(p) = app_settings.provider(platform) else {
                    continue;
                };
                let provider: Arc<dyn Provider> = match p {
                    ProviderSettings::Simulator => providers
                        .simulator
                        .get_or_insert_with(|| {
                            Arc::new(simulator::Simulator::new(settings.simulator.clone()))
                        })
                        .clone(),
                    ProviderSettings::Apns(s) => {
                        Arc::new(apns::Apns::new(s, &mut apns_tokens).map_err(|source| {
                            ProviderSetupError::Apns {
                                app: app.clone(),
                                platform,
                                source,
                            }
                        })?)
                    }
                    ProviderSettings::Fcm(s) => {
                        Arc::new(fcm::Fcm::new(s, &mut fcm_shared).map_err(|source| {
                            ProviderSetupError::Fcm {
                                app: app.clone(),
                                platform,
                                source,
                            }
                        })?)
                    }
                    ProviderSettings::Sns(_) => sns_routes
                        .get(app, platform)
                        .expect("every SNS route was built")
                        .clone(),
                };
                providers.routes.entry(app.clone()).or_default()[platform.index()] = Some(provider);
            }
        }
        providers.apns_tokens = Arc::new(apns_tokens);
        providers.fcm_shared = Arc::new(fcm_shared);
        providers.sns = sns_routes;
        Ok(providers)
    }

    /// APNs provider-token signatures made by this process.
    pub fn apns_signatures(&self) -> u64 {
        self.apns_tokens.iter().map(|t| t.signatures()).sum()
    }

    /// Shares each FCM project's quota with the other processes on the
    /// database (one round; the worker runs it every heartbeat).
    pub async fn sync_fcm_quota(
        &self,
        pool: &sqlx::PgPool,
        live_within: Duration,
    ) -> Result<(), sqlx::Error> {
        self.fcm_shared.sync_quota(pool, live_within).await
    }

    /// How long this process still sends an FCM project's messages at half
    /// its rate after a QUOTA_EXCEEDED (its own or another process's).
    pub fn fcm_quota_slowdown(&self, project: &str) -> Option<Duration> {
        self.fcm_shared.quota_slowdown(project)
    }

    /// FCM OAuth access tokens fetched by this process.
    pub fn fcm_token_fetches(&self) -> u64 {
        self.fcm_shared.token_fetches()
    }

    pub fn get(&self, app: &str, platform: Platform) -> Option<&Arc<dyn Provider>> {
        self.routes.get(app)?[platform.index()].as_ref()
    }

    /// The SNS routes, for what manages endpoints outside a send
    /// (registration, the reaper).
    pub fn sns(&self) -> &sns::Endpoints {
        &self.sns
    }

    /// The shared simulator, when any app uses it (tests read its counters).
    pub fn simulator(&self) -> Option<&Arc<simulator::Simulator>> {
        self.simulator.as_ref()
    }
}

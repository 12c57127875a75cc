//! An in-process push provider with a configurable fault mix.
//!
//! It exercises the whole pipeline — retries, `Retry-After`, dead tokens,
//! timeouts, credential errors — without credentials or network, for the
//! demo, the benchmark and tests. Faults come from two places:
//!
//! - *rules*: tokens starting with a prefix always (or for their first
//!   `times` attempts) get a scripted answer, so a test or demo can name
//!   exactly which device fails how;
//! - *rates*: random transient errors, 429s, dead tokens and timeouts for
//!   load tests.
//!
//! It builds the real APNs payload and enforces its 4096-byte limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Accepted, Message, Provider, SendError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorSettings {
    /// Base latency of every send.
    pub latency_ms: u64,
    /// Extra uniform random latency on top of `latency_ms`.
    pub latency_jitter_ms: u64,
    /// Share of sends answered 503 ServiceUnavailable.
    pub transient_error_rate: f64,
    /// Share of sends answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limited_rate: f64,
    pub retry_after_secs: u64,
    /// Share of sends answered 410 Unregistered.
    pub dead_token_rate: f64,
    /// Share of sends that never answer (the caller's timeout fires).
    pub timeout_rate: f64,
    pub rules: Vec<Rule>,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            latency_ms: 2,
            latency_jitter_ms: 3,
            transient_error_rate: 0.0,
            rate_limited_rate: 0.0,
            retry_after_secs: 1,
            dead_token_rate: 0.0,
            timeout_rate: 0.0,
            rules: Vec::new(),
        }
    }
}

impl SimulatorSettings {
    pub(crate) fn problems(&self) -> Vec<String> {
        let rates = [
            ("transient_error_rate", self.transient_error_rate),
            ("rate_limited_rate", self.rate_limited_rate),
            ("dead_token_rate", self.dead_token_rate),
            ("timeout_rate", self.timeout_rate),
        ];
        let mut p: Vec<String> = rates
            .iter()
            .filter(|(_, r)| !(0.0..=1.0).contains(r))
            .map(|(k, r)| format!("simulator.{k} is {r}; a rate is between 0.0 and 1.0"))
            .collect();
        let total: f64 = rates.iter().map(|(_, r)| r).sum();
        if total > 1.0 {
            p.push(format!(
                "simulator fault rates add up to {total}; together they must not exceed 1.0"
            ));
        }
        p.extend(
            self.rules
                .iter()
                .filter(|r| r.token_prefix.is_empty())
                .map(|_| {
                    "a simulator rule has an empty token_prefix; it would match every token"
                        .to_string()
                }),
        );
        p
    }
}

/// Tokens starting with `token_prefix` get `behaviour`, for their first
/// `times` attempts (every attempt when `times` is absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub token_prefix: String,
    pub behaviour: Behaviour,
    pub times: Option<u64>,
    /// For `rate_limited`: the `Retry-After` to answer with.
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// 410 Unregistered.
    Unregistered,
    /// 400 BadCollapseId: a permanent rejection of the message.
    BadMessage,
    /// 503 ServiceUnavailable.
    Transient,
    /// 429 TooManyRequests with Retry-After.
    RateLimited,
    /// No answer at all.
    Timeout,
    /// 403 InvalidProviderToken: our credentials are wrong.
    ConfigError,
}

pub struct Simulator {
    settings: SimulatorSettings,
    /// Attempts per token, for `times` and for tests asserting how often
    /// a device was actually sent to.
    seen: Mutex<HashMap<String, u64>>,
    accepted: AtomicU64,
    sent: AtomicU64,
}

impl Simulator {
    pub fn new(settings: SimulatorSettings) -> Simulator {
        Simulator {
            settings,
            seen: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        }
    }

    /// Send attempts that reached the simulator for `token`.
    pub fn attempts_for(&self, token: &str) -> u64 {
        self.seen.lock().unwrap().get(token).copied().unwrap_or(0)
    }

    /// Pushes accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Requests received so far, whatever their answer.
    pub fn requests(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn scripted(&self, token: &str, nth: u64) -> Option<(&Rule, Behaviour)> {
        let rule = self
            .settings
            .rules
            .iter()
            .find(|r| token.starts_with(&r.token_prefix))?;
        match rule.times {
            Some(times) if nth > times => None,
            _ => Some((rule, rule.behaviour)),
        }
    }

    fn random_fault(&self) -> Option<Behaviour> {
        let s = &self.settings;
        let mut x = fastrand::f64();
        for (rate, b) in [
            (s.transient_error_rate, Behaviour::Transient),
            (s.rate_limited_rate, Behaviour::RateLimited),
            (s.dead_token_rate, Behaviour::Unregistered),
            (s.timeout_rate, Behaviour::Timeout),
        ] {
            if x < rate {
                return Some(b);
            }
            x -= rate;
        }
        None
    }
}

#[async_trait]
impl Provider for Simulator {
    fn name(&self) -> &'static str {
        "simulator"
    }

    async fn send(&self, msg: &Message<'_>) -> Result<Accepted, SendError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let nth = {
            let mut seen = self.seen.lock().unwrap();
            match seen.get_mut(msg.token) {
                Some(n) => {
                    *n += 1;
                    *n
                }
                None => {
                    seen.insert(msg.token.to_owned(), 1);
                    1
                }
            }
        };
        let s = &self.settings;
        let latency = s.latency_ms + fastrand::u64(0..=s.latency_jitter_ms);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        // The real APNs payload and its limit (the stricter shape), so a
        // message the simulator accepts fits the real providers too.
        super::apns::payload(msg.content, "alert")?;
        let (retry_after, behaviour) = match self.scripted(msg.token, nth) {
            Some((rule, b)) => (rule.retry_after_secs.unwrap_or(s.retry_after_secs), Some(b)),
            None => (s.retry_after_secs, self.random_fault()),
        };
        match behaviour {
            None => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(Accepted {
                    provider_message_id: Some(uuid::Uuid::new_v4().to_string()),
                    status: Some(200),
                })
            }
            Some(Behaviour::Unregistered) => Err(SendError::TokenDead {
                status: Some(410),
                reason: "Unregistered".into(),
                since: None,
            }),
            Some(Behaviour::BadMessage) => Err(SendError::Permanent {
                status: Some(400),
                reason: "BadCollapseId".into(),
            }),
            Some(Behaviour::Transient) => Err(SendError::Transient {
                status: Some(503),
                reason: "ServiceUnavailable".into(),
                retry_after: None,
            }),
            Some(Behaviour::RateLimited) => Err(SendError::Transient {
                status: Some(429),
                reason: "TooManyRequests".into(),
                retry_after: Some(Duration::from_secs(retry_after)),
            }),
            Some(Behaviour::ConfigError) => Err(SendError::Config {
                status: Some(403),
                reason: "InvalidProviderToken".into(),
            }),
            Some(Behaviour::Timeout) => {
                std::future::pending::<()>().await;
                unreachable!("a pending future never completes")
            }
        }
    }
}

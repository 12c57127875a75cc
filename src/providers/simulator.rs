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
//! It builds the real APNs payload and enforces its 4096-byte limit. A
//! `panic` rule makes a send panic, as a bug in a provider client would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Accepted, Message, Provider, SendError};
use crate::config::{Behaviour, SimulatorRule, SimulatorSettings};

pub struct Simulator {
    settings: SimulatorSettings,
    /// Attempts per token, for `times` and for tests asserting how often
    /// a device was actually sent to.
    seen: Mutex<HashMap<String, u64>>,
    accepted: AtomicU64,
    sent: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// Counts a send in flight for as long as it lives (answered, timed out
/// and dropped, or unwound by a panic).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Simulator {
    pub fn new(settings: SimulatorSettings) -> Simulator {
        Simulator {
            settings,
            seen: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
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

    /// The most sends in flight at once since the last [`reset_peak`].
    ///
    /// [`reset_peak`]: Simulator::reset_peak
    pub fn peak_in_flight(&self) -> u64 {
        self.peak_in_flight.load(Ordering::Relaxed)
    }

    pub fn reset_peak(&self) {
        self.peak_in_flight.store(0, Ordering::Relaxed);
    }

    fn scripted(&self, token: &str, nth: u64) -> Option<(&SimulatorRule, Behaviour)> {
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
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        let _in_flight = InFlight(&self.in_flight);
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
        super::apns::payload(msg.content, crate::content::PushType::Alert, "")?;
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
                    endpoint_arn: None,
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
            Some(Behaviour::ConfigError) => {
                Err(SendError::config(Some(403), "InvalidProviderToken"))
            }
            Some(Behaviour::Panic) => panic!("simulated provider bug (simulator rule `panic`)"),
            Some(Behaviour::Timeout) => {
                std::future::pending::<()>().await;
                unreachable!("a pending future never completes")
            }
        }
    }
}

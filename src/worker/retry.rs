//! The retry rules: what happens after each send attempt.
//!
//! Everything about "should this delivery be tried again, and when" lives
//! here, as pure functions of the attempt's classified outcome, the
//! priority's schedule, the clock and a jitter sample, so the rules are
//! unit-tested without a database or a provider.
//!
//! - Delays grow exponentially with *full jitter* (a uniform draw between 0
//!   and the exponential ceiling), so a provider hiccup that fails thousands
//!   of sends at once does not bring them all back at the same instant.
//! - A provider's `Retry-After` is a floor, clamped so a bogus value cannot
//!   park a message for days.
//! - Nothing is ever scheduled past the message's expiry: a one-time code that
//!   arrives late is worse than none, so such a delivery is marked expired.
//! - Credential errors pause the app's provider instead of burning the
//!   delivery's attempts.
//!
//! The schedules' numbers are configuration (`[retry.urgent]`,
//! `[retry.bulk]`, [`RetrySchedule`]); what they mean is here.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::config::RetrySchedule;
use crate::providers::SendError;

/// After a lost connection, the resend waits this long (jittered between
/// the two), enough for a reconnect, short enough to be invisible.
const RESEND_MIN: Duration = Duration::from_millis(100);
const RESEND_MAX: Duration = Duration::from_millis(1000);
/// Lost connections do not spend attempts, but a delivery gets at most
/// this many tries per attempt of its schedule.
const MAX_TRIES_PER_ATTEMPT: u32 = 3;

impl RetrySchedule {
    /// The exponential ceiling before the retry following attempt `attempt`
    /// (1-based): base·2^(attempt-1), capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let ms = self
            .base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.cap_ms);
        Duration::from_millis(ms)
    }

    /// Full jitter: uniform in [min_delay, ceiling], with `jitter` in [0, 1).
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as f64;
        let min = self.min_delay_ms as f64;
        let ms = min + (ceiling - min).max(0.0) * jitter.clamp(0.0, 1.0);
        Duration::from_millis(ms as u64)
    }
}

/// What to do with a delivery after an attempt (or instead of one).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Give up: the message or the setup is wrong, or attempts ran out.
    Failed(String),
    /// The device token is dead: invalidate the device, give up.
    TokenDead(String),
    /// The message's time to live ran out before it could be delivered.
    Expired(String),
    /// The connection dropped mid-request: try again at this time without
    /// counting the attempt.
    Resend {
        at: DateTime<Utc>,
        reason: String,
    },
    /// The provider rejected our credentials. Pause the app's sends until
    /// the given time, hand the delivery back without counting the attempt.
    PauseProvider {
        until: DateTime<Utc>,
        reason: String,
    },
}

/// The inputs [`decide`] needs about the delivery.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// 1-based number of the attempt just made.
    pub number: u32,
    /// Every try so far, this one included (lost connections count here).
    pub tries: u32,
    pub schedule: &'a RetrySchedule,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// A uniform sample in [0, 1) for the jitter.
    pub jitter: f64,
    /// How long sends to a misconfigured provider pause.
    pub config_pause: Duration,
}

/// Before sending: a delivery whose expiry has passed is never sent. The
/// reason to record, if so.
pub fn expired_before_send(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
    (now >= expires_at).then(|| {
        format!(
            "expired at {} before it could be sent",
            expires_at.format("%Y-%m-%d %H:%M:%S%.3f UTC")
        )
    })
}

/// After an attempt (`error` is `None` when the provider accepted): the
/// rules in one place.
pub fn decide(error: Option<&SendError>, a: Attempt<'_>) -> Verdict {
    let Some(err) = error else {
        return Verdict::Delivered;
    };
    match err {
        SendError::Permanent { .. } => Verdict::Failed(err.to_string()),
        SendError::TokenDead { .. } => Verdict::TokenDead(err.to_string()),
        SendError::Config { pause, .. } => Verdict::PauseProvider {
            until: a.now + pause.unwrap_or(a.config_pause),
            reason: err.to_string(),
        },
        SendError::ConnectionLost { .. } => {
            // The request may have reached the provider, so wait a moment
            // (a reconnect) rather than resend at once; the attempt is not
            // spent, but the tries are bounded so a server that drops every
            // connection cannot keep a delivery going until its TTL.
            if a.tries
                >= a.schedule
                    .max_attempts
                    .saturating_mul(MAX_TRIES_PER_ATTEMPT)
            {
                return Verdict::Failed(format!(
                    "gave up after {} tries; last error: {err}",
                    a.tries
                ));
            }
            let delay = RESEND_MIN + (RESEND_MAX - RESEND_MIN).mul_f64(a.jitter.clamp(0.0, 1.0));
            let at = a.now + delay;
            if at >= a.expires_at {
                return Verdict::Expired(format!(
                    "expired at {}: the connection dropped and a resend would have been too late; last error: {err}",
                    a.expires_at.format("%Y-%m-%d %H:%M:%S%.3f UTC")
                ));
            }
            Verdict::Resend {
                at,
                reason: err.to_string(),
            }
        }
        SendError::Transient { retry_after, .. } => {
            if a.number >= a.schedule.max_attempts {
                return Verdict::Failed(format!(
                    "gave up after {} attempts; last error: {err}",
                    a.number
                ));
            }
            let mut delay = a.schedule.backoff(a.number, a.jitter);
            if let Some(ra) = retry_after {
                let ra = (*ra).min(Duration::from_secs(a.schedule.max_retry_after_secs));
                delay = delay.max(ra);
            }
            let at = a.now + delay;
            if at >= a.expires_at {
                return Verdict::Expired(format!(
                    "expired at {}: the next retry would have been too late; last error: {err}",
                    a.expires_at.format("%Y-%m-%d %H:%M:%S%.3f UTC")
                ));
            }
            Verdict::RetryAt(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(retry_after: Option<Duration>) -> Result<(), SendError> {
        Err(SendError::Transient {
            status: Some(503),
            reason: "ServiceUnavailable".into(),
            retry_after,
        })
    }

    fn attempt(number: u32, jitter: f64, now: DateTime<Utc>) -> Attempt<'static> {
        Attempt {
            number,
            tries: number,
            schedule: &RetrySchedule::URGENT,
            expires_at: now + chrono::Duration::hours(1),
            now,
            jitter,
            config_pause: Duration::from_secs(60),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let s = RetrySchedule::URGENT;
        assert_eq!(s.ceiling(1), Duration::from_secs(1));
        assert_eq!(s.ceiling(2), Duration::from_secs(2));
        assert_eq!(s.ceiling(5), Duration::from_secs(16));
        assert_eq!(s.ceiling(7), Duration::from_secs(60));
        assert_eq!(s.ceiling(400), Duration::from_secs(60));
    }

    #[test]
    fn full_jitter_spans_min_to_ceiling() {
        let s = RetrySchedule::URGENT;
        assert_eq!(s.backoff(3, 0.0), Duration::from_millis(100));
        assert_eq!(s.backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(s.backoff(3, 0.5), Duration::from_millis(2050));
    }

    #[test]
    fn urgent_first_retry_is_about_a_second_bulk_is_slower() {
        let now = Utc::now();
        for j in [0.0, 0.3, 0.99] {
            let Verdict::RetryAt(at) = decide(transient(None).as_ref().err(), attempt(1, j, now))
            else {
                panic!("expected a retry")
            };
            assert!(at - now <= chrono::Duration::seconds(1));
        }
        assert!(RetrySchedule::BULK.backoff(1, 0.0) >= Duration::from_secs(5));
    }

    #[test]
    fn retry_after_is_a_floor_and_clamped() {
        let now = Utc::now();
        let v = decide(
            transient(Some(Duration::from_secs(30))).as_ref().err(),
            attempt(1, 0.5, now),
        );
        assert_eq!(v, Verdict::RetryAt(now + Duration::from_secs(30)));
        let v = decide(
            transient(Some(Duration::from_secs(86_400))).as_ref().err(),
            attempt(1, 0.5, now),
        );
        assert_eq!(v, Verdict::RetryAt(now + Duration::from_secs(300)));
    }

    #[test]
    fn never_scheduled_past_expiry() {
        let now = Utc::now();
        let mut a = attempt(1, 0.9, now);
        a.expires_at = now + chrono::Duration::milliseconds(500);
        let v = decide(transient(Some(Duration::from_secs(2))).as_ref().err(), a);
        assert!(
            matches!(v, Verdict::Expired(ref r) if r.contains("too late")),
            "{v:?}"
        );
    }

    #[test]
    fn expiry_is_checked_before_sending() {
        let now = Utc::now();
        assert!(expired_before_send(now, now).is_some());
        assert!(expired_before_send(now + chrono::Duration::seconds(1), now).is_none());
    }

    #[test]
    fn attempts_run_out() {
        let now = Utc::now();
        let v = decide(transient(None).as_ref().err(), attempt(8, 0.5, now));
        assert!(
            matches!(v, Verdict::Failed(ref r) if r.contains("gave up after 8 attempts")),
            "{v:?}"
        );
        assert!(matches!(
            decide(transient(None).as_ref().err(), attempt(7, 0.5, now)),
            Verdict::RetryAt(_)
        ));
    }

    #[test]
    fn classification_maps_to_verdicts() {
        let now = Utc::now();
        let a = attempt(1, 0.5, now);
        assert_eq!(decide(None, a), Verdict::Delivered);
        let perm: Result<(), _> = Err(SendError::Permanent {
            status: Some(400),
            reason: "BadTopic".into(),
        });
        assert!(matches!(decide(perm.as_ref().err(), a), Verdict::Failed(_)));
        let dead: Result<(), _> = Err(SendError::TokenDead {
            status: Some(410),
            reason: "Unregistered".into(),
            since: None,
        });
        assert!(matches!(
            decide(dead.as_ref().err(), a),
            Verdict::TokenDead(_)
        ));
        let cfg: Result<(), _> = Err(SendError::config(Some(403), "InvalidProviderToken"));
        assert_eq!(
            decide(cfg.as_ref().err(), a),
            Verdict::PauseProvider {
                until: now + Duration::from_secs(60),
                reason: "provider configuration error (HTTP 403): InvalidProviderToken".into()
            }
        );
    }

    #[test]
    fn a_lost_connection_is_resent_soon_without_spending_an_attempt_but_tries_are_bounded() {
        let now = Utc::now();
        let lost: Result<(), _> = Err(SendError::ConnectionLost {
            reason: "connection reset".into(),
        });
        let mut a = attempt(8, 0.5, now);
        a.tries = 9;
        let Verdict::Resend { at, .. } = decide(lost.as_ref().err(), a) else {
            panic!("expected a resend at the last attempt");
        };
        let waited = (at - now).to_std().unwrap();
        assert!((RESEND_MIN..=RESEND_MAX).contains(&waited));
        a.tries = 24;
        assert!(matches!(decide(lost.as_ref().err(), a), Verdict::Failed(_)));
        a.tries = 2;
        a.expires_at = now + Duration::from_millis(50);
        assert!(matches!(
            decide(lost.as_ref().err(), a),
            Verdict::Expired(_)
        ));
    }

    #[test]
    fn jittered_delays_spread_out() {
        // A thousand deliveries failing together must not come back together.
        let s = RetrySchedule::URGENT;
        let mut delays: Vec<u128> = (0..1000)
            .map(|i| s.backoff(4, i as f64 / 1000.0).as_millis())
            .collect();
        delays.dedup();
        assert!(delays.len() > 900);
        assert!(delays.iter().all(|&d| (100..=8000).contains(&d)));
    }
}

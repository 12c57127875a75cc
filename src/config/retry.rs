//! `[retry.urgent]` and `[retry.bulk]`: the numbers of each priority's
//! retry schedule. The rules that use them live in `worker::retry`.
//!
//! Each key may be left out of the file and keeps *its own priority's*
//! default, so a `[retry.urgent]` that only sets `base_ms` is still an
//! urgent schedule, not a half-empty one.

use serde::Deserialize;

use crate::model::Priority;

/// One priority's retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Ceiling of the first retry's delay; doubles with each attempt.
    pub base_ms: u64,
    /// Largest delay between two attempts.
    pub cap_ms: u64,
    /// Smallest delay, so full jitter never retries in a hot loop.
    pub min_delay_ms: u64,
    /// Send attempts before the delivery is given up as failed.
    pub max_attempts: u32,
    /// Longest `Retry-After` honoured; longer values are clamped to this.
    pub max_retry_after_secs: u64,
}

impl RetrySchedule {
    /// Transactional alerts: first retry within ~1 s, give up after a few
    /// minutes of trying (the message's TTL usually ends it sooner).
    pub const URGENT: RetrySchedule = RetrySchedule {
        base_ms: 1_000,
        cap_ms: 60_000,
        min_delay_ms: 100,
        max_attempts: 8,
        max_retry_after_secs: 300,
    };
    /// Marketing: slower and spread out, so a campaign caught by a provider
    /// outage comes back as a trickle, not a wall.
    pub const BULK: RetrySchedule = RetrySchedule {
        base_ms: 30_000,
        cap_ms: 30 * 60_000,
        min_delay_ms: 5_000,
        max_attempts: 10,
        max_retry_after_secs: 3_600,
    };

    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.base_ms == 0 {
            p.push("base_ms must be greater than 0".into());
        }
        if self.cap_ms < self.base_ms {
            p.push(format!(
                "cap_ms ({}) is smaller than base_ms ({})",
                self.cap_ms, self.base_ms
            ));
        }
        if self.min_delay_ms > self.cap_ms {
            p.push(format!(
                "min_delay_ms ({}) is larger than cap_ms ({})",
                self.min_delay_ms, self.cap_ms
            ));
        }
        if self.max_attempts == 0 {
            p.push("max_attempts must be at least 1".into());
        }
        p
    }
}

/// A schedule table as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialSchedule {
    base_ms: Option<u64>,
    cap_ms: Option<u64>,
    min_delay_ms: Option<u64>,
    max_attempts: Option<u32>,
    max_retry_after_secs: Option<u64>,
}

impl PartialSchedule {
    fn over(self, d: RetrySchedule) -> RetrySchedule {
        RetrySchedule {
            base_ms: self.base_ms.unwrap_or(d.base_ms),
            cap_ms: self.cap_ms.unwrap_or(d.cap_ms),
            min_delay_ms: self.min_delay_ms.unwrap_or(d.min_delay_ms),
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
            max_retry_after_secs: self.max_retry_after_secs.unwrap_or(d.max_retry_after_secs),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PartialRetrySettings {
    urgent: PartialSchedule,
    bulk: PartialSchedule,
}

/// `[retry]`: a schedule per priority.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "PartialRetrySettings")]
pub struct RetrySettings {
    pub urgent: RetrySchedule,
    pub bulk: RetrySchedule,
}

impl From<PartialRetrySettings> for RetrySettings {
    fn from(p: PartialRetrySettings) -> Self {
        RetrySettings {
            urgent: p.urgent.over(RetrySchedule::URGENT),
            bulk: p.bulk.over(RetrySchedule::BULK),
        }
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        PartialRetrySettings::default().into()
    }
}

impl RetrySettings {
    pub fn schedule(&self, priority: Priority) -> &RetrySchedule {
        match priority {
            Priority::Urgent => &self.urgent,
            Priority::Bulk => &self.bulk,
        }
    }
}

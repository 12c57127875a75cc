//! Per-app send holds: the circuit breaker and the credential-error pause.
//!
//! Each lane (one per platform) keeps one [`Holds`]. An app whose
//! provider fails `threshold` sends in a row with transient errors is put on
//! hold for a cooldown, so the daemon stops hammering a provider that is
//! failing everything; an app whose credentials are rejected is put on hold
//! for the configured pause. While on hold the lane does not claim the app's
//! retries at all, and hands its fresh deliveries back until the hold ends,
//! so they keep their attempts and their place. After
//! the hold, sends resume; one more failure run re-opens it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Default)]
struct AppState {
    consecutive_failures: u32,
    held_until: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct Holds {
    threshold: u32,
    cooldown: Duration,
    apps: Mutex<HashMap<String, AppState>>,
}

/// What a recorded result changed, for logging.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    None,
    Opened { until: DateTime<Utc> },
}

impl Holds {
    pub fn new(threshold: u32, cooldown: Duration) -> Holds {
        Holds {
            threshold: threshold.max(1),
            cooldown,
            apps: Mutex::new(HashMap::new()),
        }
    }

    /// Apps whose deliveries must not be claimed right now.
    pub fn held(&self, now: DateTime<Utc>) -> Vec<String> {
        let apps = self.apps.lock().unwrap();
        apps.iter()
            .filter(|(_, s)| s.held_until.is_some_and(|t| t > now))
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// Until when `app` is on hold, if it is.
    pub fn held_until(&self, app: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let apps = self.apps.lock().unwrap();
        apps.get(app)?.held_until.filter(|t| *t > now)
    }

    pub fn record_success(&self, app: &str) {
        let mut apps = self.apps.lock().unwrap();
        if let Some(s) = apps.get_mut(app) {
            s.consecutive_failures = 0;
        }
    }

    /// A transient failure; opens the breaker at the threshold.
    pub fn record_transient(&self, app: &str, now: DateTime<Utc>) -> Change {
        let mut apps = self.apps.lock().unwrap();
        let s = match apps.get_mut(app) {
            Some(s) => s,
            None => apps.entry(app.to_owned()).or_default(),
        };
        s.consecutive_failures += 1;
        if s.consecutive_failures >= self.threshold && s.held_until.is_none_or(|t| t <= now) {
            let until = now + self.cooldown;
            s.held_until = Some(until);
            s.consecutive_failures = 0;
            return Change::Opened { until };
        }
        Change::None
    }

    /// Holds the app until `until` (credentials rejected).
    pub fn hold(&self, app: &str, until: DateTime<Utc>) -> Change {
        let mut apps = self.apps.lock().unwrap();
        let s = apps.entry(app.to_owned()).or_default();
        if s.held_until.is_some_and(|t| t >= until) {
            return Change::None;
        }
        s.held_until = Some(until);
        Change::Opened { until }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_failures_in_a_row_and_closes_after_cooldown() {
        let h = Holds::new(3, Duration::from_secs(10));
        let now = Utc::now();
        assert_eq!(h.record_transient("a", now), Change::None);
        assert_eq!(h.record_transient("a", now), Change::None);
        h.record_success("a");
        assert_eq!(h.record_transient("a", now), Change::None);
        assert_eq!(h.record_transient("a", now), Change::None);
        assert!(matches!(
            h.record_transient("a", now),
            Change::Opened { .. }
        ));
        assert_eq!(h.held(now), vec!["a".to_string()]);
        assert!(h.held(now + Duration::from_secs(11)).is_empty());
    }

    #[test]
    fn hold_extends_never_shortens() {
        let h = Holds::new(3, Duration::from_secs(10));
        let now = Utc::now();
        assert!(matches!(
            h.hold("b", now + Duration::from_secs(60)),
            Change::Opened { .. }
        ));
        assert_eq!(h.hold("b", now + Duration::from_secs(5)), Change::None);
        assert_eq!(h.held(now + Duration::from_secs(30)), vec!["b".to_string()]);
    }
}

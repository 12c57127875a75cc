//! Send holds per app and environment: the circuit breaker, configuration
//! errors and the misconfiguration [guard](super::guard).
//!
//! Each lane (one per platform) keeps one [`Holds`], keyed by (app,
//! environment), so a wrong sandbox setup never pauses production. An app
//! environment is put on hold when:
//!
//! - **the breaker opens**: over the last `breaker_window_secs`, at least
//!   `breaker_threshold` answers came back and at least
//!   `breaker_failure_rate` of them were transient failures (timeouts,
//!   429, 5xx). It judges the provider's answers as a rate, so a lone
//!   reset among thousands of successes never opens it; a connection lost
//!   mid-request ([`SendError::ConnectionLost`](crate::providers::SendError))
//!   is not an answer and is never counted;
//! - **the provider names a configuration error** (credentials, topic,
//!   push type, certificate environment): for `config_error_pause_secs`;
//! - **the guard trips** on a burst of token-level rejections.
//!
//! While on hold the lane does not claim the app's retries when both its
//! environments are held, and hands back every other job of a held
//! environment with its due time moved to the hold's end, so they keep
//! their attempts. Every hold this process opens is queued as an
//! [`Opened`] event for the lane to persist (`pushrelay status` shows it,
//! other processes honour it) and, for a guard trip, to restore the
//! burst's casualties.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::guard::{Casualty, Decision, Guard, GuardRule, Rejection};
use crate::model::Environment;

/// When the breaker opens.
#[derive(Debug, Clone, Copy)]
pub struct BreakerRule {
    pub window: Duration,
    /// Answers needed in the window before the rate is judged.
    pub min_answers: u32,
    /// Share of transient failures that opens it.
    pub failure_rate: f64,
    pub cooldown: Duration,
}

/// Why an app environment is on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    Breaker,
    ConfigError,
    Guard,
}

impl HoldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Breaker => "breaker",
            HoldKind::ConfigError => "config_error",
            HoldKind::Guard => "guard",
        }
    }
}

/// A hold this process opened, for the lane to persist and act on.
#[derive(Debug, Clone)]
pub struct Opened {
    pub app: String,
    pub environment: Environment,
    pub kind: HoldKind,
    pub until: DateTime<Utc>,
    pub reason: String,
    pub hint: String,
    /// Guard trips: the devices and deliveries to restore, invalidated
    /// since `since`.
    pub casualties: Vec<Casualty>,
    pub since: DateTime<Utc>,
}

/// One second of answers, for the breaker's window.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    second: i64,
    answers: u32,
    failures: u32,
}

#[derive(Debug, Default)]
struct KeyState {
    buckets: VecDeque<Bucket>,
    held_until: Option<DateTime<Utc>>,
    guard: Guard,
}

impl KeyState {
    fn count(&mut self, rule: &BreakerRule, now: DateTime<Utc>, failed: bool) -> (u32, u32) {
        let second = now.timestamp();
        let oldest = second - rule.window.as_secs().max(1) as i64;
        while self.buckets.front().is_some_and(|b| b.second <= oldest) {
            self.buckets.pop_front();
        }
        match self.buckets.back_mut() {
            Some(b) if b.second == second => {
                b.answers += 1;
                b.failures += u32::from(failed);
            }
            _ => self.buckets.push_back(Bucket {
                second,
                answers: 1,
                failures: u32::from(failed),
            }),
        }
        self.buckets
            .iter()
            .fold((0, 0), |(a, f), b| (a + b.answers, f + b.failures))
    }
}

/// One app's state in each environment (indexed by `Environment as usize`),
/// so that a lookup borrows the app's name instead of building a key.
type AppState = [KeyState; 2];

#[derive(Debug)]
pub struct Holds {
    breaker: BreakerRule,
    guard: GuardRule,
    apps: Mutex<HashMap<String, AppState>>,
    opened: Mutex<Vec<Opened>>,
    /// Woken when a hold is opened.
    pub wake: tokio::sync::Notify,
}

/// What a recorded result changed, for logging.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    None,
    Opened { until: DateTime<Utc> },
}

impl Holds {
    pub fn new(breaker: BreakerRule, guard: GuardRule) -> Holds {
        Holds {
            breaker: BreakerRule {
                min_answers: breaker.min_answers.max(1),
                ..breaker
            },
            guard,
            apps: Mutex::new(HashMap::new()),
            opened: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn with<T>(&self, app: &str, env: Environment, f: impl FnOnce(&mut KeyState) -> T) -> T {
        let mut apps = self.apps.lock().unwrap();
        // No allocation on the hot path once the app is known.
        let state = match apps.get_mut(app) {
            Some(s) => s,
            None => apps.entry(app.to_owned()).or_default(),
        };
        f(&mut state[env as usize])
    }

    /// Apps held in every environment: their retries are not claimed.
    pub fn held(&self, now: DateTime<Utc>) -> Vec<String> {
        let apps = self.apps.lock().unwrap();
        let mut held: Vec<String> = apps
            .iter()
            .filter(|(_, envs)| envs.iter().all(|s| s.held_until.is_some_and(|t| t > now)))
            .map(|(app, _)| app.clone())
            .collect();
        held.sort();
        held
    }

    /// Until when `app`'s `env` is on hold, if it is.
    pub fn held_until(
        &self,
        app: &str,
        env: Environment,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let apps = self.apps.lock().unwrap();
        apps.get(app)?[env as usize].held_until.filter(|t| *t > now)
    }

    pub fn record_success(&self, app: &str, env: Environment, now: DateTime<Utc>) {
        let (breaker, guard) = (&self.breaker, &self.guard);
        self.with(app, env, |s| {
            s.count(breaker, now, false);
            s.guard.answer(guard, true, now);
        });
    }

    /// An answer about the message, not the token (rejected payload…):
    /// counts toward both windows as a non-failure.
    pub fn record_other(&self, app: &str, env: Environment, now: DateTime<Utc>) {
        let (breaker, guard) = (&self.breaker, &self.guard);
        self.with(app, env, |s| {
            s.count(breaker, now, false);
            s.guard.answer(guard, false, now);
        });
    }

    /// A transient failure; opens the breaker when the window's failure
    /// rate reaches the rule's.
    pub fn record_transient(&self, app: &str, env: Environment, now: DateTime<Utc>) -> Change {
        let rule = self.breaker;
        let until = self.with(app, env, |s| {
            let (answers, failures) = s.count(&rule, now, true);
            let rate = f64::from(failures) / f64::from(answers);
            if answers >= rule.min_answers
                && rate >= rule.failure_rate
                && s.held_until.is_none_or(|t| t <= now)
            {
                let until = now + rule.cooldown;
                s.held_until = Some(until);
                s.buckets.clear();
                return Some((until, answers, failures));
            }
            None
        });
        match until {
            Some((until, answers, failures)) => {
                self.push(Opened {
                    app: app.to_owned(),
                    environment: env,
                    kind: HoldKind::Breaker,
                    until,
                    reason: format!(
                        "{failures} of the last {answers} sends failed with transient errors"
                    ),
                    hint: "the provider is failing (5xx, 429, timeouts): sends resume on their own after the cooldown".into(),
                    casualties: Vec::new(),
                    since: now,
                });
                Change::Opened { until }
            }
            None => Change::None,
        }
    }

    /// A token-level rejection, judged by the guard (see its module).
    /// `pause_until`: how long a trip pauses; `hint` words the trip.
    pub fn record_rejection(
        &self,
        app: &str,
        env: Environment,
        r: &Rejection<'_>,
        now: DateTime<Utc>,
        pause_until: DateTime<Utc>,
        hint: impl FnOnce(&str) -> String,
    ) -> Decision {
        let (breaker, guard) = (&self.breaker, &self.guard);
        let decision = self.with(app, env, |s| {
            s.count(breaker, now, false);
            let d = s.guard.reject(guard, r, now, pause_until);
            if matches!(d, Decision::Trip { .. }) {
                s.held_until = Some(s.held_until.map_or(pause_until, |t| t.max(pause_until)));
            }
            d
        });
        if let Decision::Trip {
            casualties,
            since,
            reason,
        } = &decision
        {
            self.push(Opened {
                app: app.to_owned(),
                environment: env,
                kind: HoldKind::Guard,
                until: pause_until,
                reason: format!("a burst of token-level rejections ({reason}): the provider setup is probably wrong, not the devices"),
                hint: hint(reason),
                casualties: casualties.clone(),
                since: *since,
            });
        }
        decision
    }

    /// Holds `app`'s `env` until `until` (a configuration error).
    pub fn hold(
        &self,
        app: &str,
        env: Environment,
        until: DateTime<Utc>,
        reason: &str,
        hint: String,
    ) -> Change {
        let extended = self.extend(app, env, until);
        if extended {
            self.push(Opened {
                app: app.to_owned(),
                environment: env,
                kind: HoldKind::ConfigError,
                until,
                reason: reason.to_owned(),
                hint,
                casualties: Vec::new(),
                since: until,
            });
            return Change::Opened { until };
        }
        Change::None
    }

    /// A hold another process recorded: honoured, not re-announced. A
    /// guard trip also puts this process's guard on probation.
    pub fn honour(&self, app: &str, env: Environment, until: DateTime<Utc>, kind: &str) {
        if self.extend(app, env, until) && kind == HoldKind::Guard.as_str() {
            self.with(app, env, |s| s.guard.start_probation());
        }
    }

    fn extend(&self, app: &str, env: Environment, until: DateTime<Utc>) -> bool {
        self.with(app, env, |s| {
            if s.held_until.is_some_and(|t| t >= until) {
                return false;
            }
            s.held_until = Some(until);
            true
        })
    }

    fn push(&self, o: Opened) {
        self.opened.lock().unwrap().push(o);
        self.wake.notify_one();
    }

    /// Holds opened since the last call.
    pub fn take_opened(&self) -> Vec<Opened> {
        std::mem::take(&mut *self.opened.lock().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Environment = Environment::Production;
    const S: Environment = Environment::Sandbox;

    fn holds(min: u32) -> Holds {
        Holds::new(
            BreakerRule {
                window: Duration::from_secs(10),
                min_answers: min,
                failure_rate: 0.5,
                cooldown: Duration::from_secs(10),
            },
            GuardRule::default(),
        )
    }

    #[test]
    fn opens_on_a_failure_rate_and_closes_after_cooldown() {
        let h = holds(10);
        let now = Utc::now();
        for _ in 0..5 {
            h.record_success("a", P, now);
        }
        for _ in 0..4 {
            assert_eq!(h.record_transient("a", P, now), Change::None);
        }
        // 5 of 10 failed.
        assert!(matches!(
            h.record_transient("a", P, now),
            Change::Opened { .. }
        ));
        assert_eq!(h.held_until("a", S, now), None);
        assert!(h.held_until("a", P, now).is_some());
        assert!(h
            .held_until("a", P, now + Duration::from_secs(11))
            .is_none());
        assert_eq!(h.take_opened().len(), 1);
    }

    #[test]
    fn rare_failures_among_many_successes_never_open_it() {
        let h = holds(50);
        let mut now = Utc::now();
        for i in 0..100_000 {
            now += Duration::from_millis(1);
            if i % 1000 == 0 {
                // Even a few in a row.
                for _ in 0..3 {
                    assert_eq!(h.record_transient("a", P, now), Change::None);
                }
            } else {
                h.record_success("a", P, now);
            }
        }
    }

    #[test]
    fn old_failures_leave_the_window() {
        let h = holds(4);
        let start = Utc::now();
        for i in 0..3 {
            h.record_transient("a", P, start + Duration::from_secs(i));
        }
        // Ten seconds later the first three are gone: one failure of one
        // answer is below the minimum volume.
        assert_eq!(
            h.record_transient("a", P, start + Duration::from_secs(20)),
            Change::None
        );
    }

    #[test]
    fn only_apps_held_in_both_environments_are_left_unclaimed() {
        let h = holds(3);
        let now = Utc::now();
        let until = now + Duration::from_secs(60);
        h.hold("a", P, until, "BadTopic", String::new());
        assert!(h.held(now).is_empty());
        h.hold("a", S, until, "BadTopic", String::new());
        assert_eq!(h.held(now), vec!["a".to_string()]);
    }

    #[test]
    fn hold_extends_never_shortens() {
        let h = holds(3);
        let now = Utc::now();
        assert!(matches!(
            h.hold("b", P, now + Duration::from_secs(60), "x", String::new()),
            Change::Opened { .. }
        ));
        assert_eq!(
            h.hold("b", P, now + Duration::from_secs(5), "x", String::new()),
            Change::None
        );
        assert!(h
            .held_until("b", P, now + Duration::from_secs(30))
            .is_some());
    }
}

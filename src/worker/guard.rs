//! The misconfiguration guard: token-level rejections that come in a burst
//! no real fleet produces are taken for a provider misconfiguration, not
//! for dead devices.
//!
//! APNs answers `BadDeviceToken` / `DeviceTokenNotForTopic` and FCM answers
//! `SENDER_ID_MISMATCH` for *every* device when the topic, the gateway or
//! the Firebase project is wrong; believing them wipes the whole fleet in
//! one notification. So each token-level rejection (those, `Unregistered`,
//! FCM `UNREGISTERED`, `INVALID_ARGUMENT` about the token) passes through
//! the guard of its app/platform/environment, which keeps the last
//! [`GuardRule::window`] answers (accepted sends, token rejections and
//! other verdicts on a message; not transient failures, which say nothing
//! about tokens) no older than [`GuardRule::max_age`]. The guard **trips**
//! when, in that window, there are at least [`GuardRule::min_rejections`]
//! token-level rejections **and** they are at least [`GuardRule::share`] of
//! the answers. A campaign to a dormant segment sees 20–30 % dead tokens
//! among successes, far below the 80 % share; a wrong configuration sees
//! ~100 % rejections and no success, and trips after ten of them.
//!
//! On a trip the caller pauses the app/platform/environment, restores the
//! devices invalidated by the rejections still in the window (they were
//! part of the burst) and puts their deliveries back to pending. After
//! the pause the guard is on **probation** until the first accepted send:
//! token-level rejections then never invalidate (the delivery goes back to
//! pending, its attempt not counted) but still count, so a still-wrong
//! configuration trips again after a few probes instead of wiping devices
//! bit by bit. A real dead token met during probation is simply tried
//! again later and invalidated once a success has proven the setup.
//!
//! Pure logic with the clock passed in, so the rules are unit-tested.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{Environment, Platform};

/// When a run of token-level rejections is taken for a misconfiguration.
#[derive(Debug, Clone, Copy)]
pub struct GuardRule {
    /// How many recent answers are judged.
    pub window: usize,
    /// Answers older than this are forgotten.
    pub max_age: Duration,
    /// At least this many token-level rejections in the window…
    pub min_rejections: usize,
    /// …and at least this share of the window's answers.
    pub share: f64,
}

impl Default for GuardRule {
    fn default() -> Self {
        GuardRule {
            window: 50,
            max_age: Duration::from_secs(60),
            min_rejections: 10,
            share: 0.8,
        }
    }
}

/// A token-level rejection, as the guard needs it.
#[derive(Debug, Clone)]
pub struct Rejection<'a> {
    pub delivery_id: i64,
    pub device_id: i64,
    /// The provider's reason (`BadDeviceToken`, `SENDER_ID_MISMATCH: …`).
    pub reason: &'a str,
}

/// A device invalidated, and its delivery ended, during a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Casualty {
    pub delivery_id: i64,
    pub device_id: i64,
}

/// What to do with a token-level rejection.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Believe it: invalidate the device.
    Invalidate,
    /// Do not believe it (paused or on probation): back to pending.
    Withhold,
    /// This one completed a burst: pause, restore `casualties`, and
    /// withhold this one too.
    Trip {
        casualties: Vec<Casualty>,
        /// Since when the casualties were invalidated (the oldest).
        since: DateTime<Utc>,
        /// The most frequent reason in the burst.
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Answer {
    at: DateTime<Utc>,
    /// `Some` for a token-level rejection: its reason and, if it was
    /// believed, what to restore.
    rejected: Option<(String, Option<Casualty>)>,
}

/// One app/platform/environment's guard.
#[derive(Debug, Default)]
pub struct Guard {
    answers: VecDeque<Answer>,
    /// Token-level answers are not believed before this.
    paused_until: Option<DateTime<Utc>>,
    /// Tripped since the last accepted send.
    probation: bool,
}

impl Guard {
    fn prune(&mut self, rule: &GuardRule, now: DateTime<Utc>) {
        let oldest = now - rule.max_age;
        while self
            .answers
            .front()
            .is_some_and(|a| a.at < oldest || self.answers.len() > rule.window)
        {
            self.answers.pop_front();
        }
    }

    /// Another process's guard tripped for this app environment: believe
    /// no token rejection here either until a send succeeds.
    pub fn start_probation(&mut self) {
        self.probation = true;
    }

    /// An answer that is not a token-level rejection: an accepted send
    /// (`accepted`) ends probation.
    pub fn answer(&mut self, rule: &GuardRule, accepted: bool, now: DateTime<Utc>) {
        if accepted {
            self.probation = false;
        }
        self.answers.push_back(Answer {
            at: now,
            rejected: None,
        });
        self.prune(rule, now);
    }

    /// A token-level rejection; `pause_until` is how long a trip pauses.
    pub fn reject(
        &mut self,
        rule: &GuardRule,
        r: &Rejection<'_>,
        now: DateTime<Utc>,
        pause_until: DateTime<Utc>,
    ) -> Decision {
        let paused = self.paused_until.is_some_and(|t| t > now);
        let believed = !paused && !self.probation;
        let casualty = believed.then_some(Casualty {
            delivery_id: r.delivery_id,
            device_id: r.device_id,
        });
        self.answers.push_back(Answer {
            at: now,
            rejected: Some((r.reason.to_owned(), casualty)),
        });
        self.prune(rule, now);
        if paused {
            return Decision::Withhold;
        }
        let rejections = self.answers.iter().filter(|a| a.rejected.is_some()).count();
        let share = rejections as f64 / self.answers.len() as f64;
        if rejections >= rule.min_rejections && share >= rule.share {
            let mut casualties = Vec::new();
            let mut since = now;
            let mut reasons: Vec<(&str, usize)> = Vec::new();
            for a in &self.answers {
                let Some((reason, c)) = &a.rejected else {
                    continue;
                };
                let code = code(reason);
                match reasons.iter_mut().find(|(r, _)| *r == code) {
                    Some((_, n)) => *n += 1,
                    None => reasons.push((code, 1)),
                }
                if let Some(c) = c {
                    if c.delivery_id != r.delivery_id {
                        casualties.push(*c);
                        since = since.min(a.at);
                    }
                }
            }
            let reason = reasons
                .iter()
                .max_by_key(|(_, n)| *n)
                .map_or(r.reason, |(r, _)| r)
                .to_owned();
            self.answers.clear();
            self.paused_until = Some(pause_until);
            self.probation = true;
            return Decision::Trip {
                casualties,
                since,
                reason,
            };
        }
        if believed {
            Decision::Invalidate
        } else {
            Decision::Withhold
        }
    }
}

/// The provider's code in a reason: "SENDER_ID_MISMATCH: message" is
/// `SENDER_ID_MISMATCH`.
fn code(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason).trim()
}

/// What an operator should check, in plain words, for a burst of `reason`.
pub fn hint(platform: Platform, environment: Environment, reason: &str) -> String {
    let code = code(reason);
    match code {
        "DeviceTokenNotForTopic" => format!(
            "every device answered DeviceTokenNotForTopic: the apns-topic (`topic`) is probably not this app's bundle id ({platform}, {environment})"
        ),
        "BadDeviceToken" => format!(
            "BadDeviceToken for every device: sandbox tokens sent to the production gateway or the reverse — check the devices' environment and the gateway URLs (production_url / sandbox_url) ({platform}, {environment})"
        ),
        "SENDER_ID_MISMATCH" => format!(
            "SENDER_ID_MISMATCH for every device: the service account is for another Firebase project than the one the apps registered with ({platform})"
        ),
        "Unregistered" | "UNREGISTERED" => format!(
            "{code} for nearly every device: the credentials or the project probably belong to another app ({platform}, {environment})"
        ),
        "INVALID_ARGUMENT" => format!(
            "INVALID_ARGUMENT about the token for every device: the tokens are probably not FCM registration tokens of this project ({platform})"
        ),
        other => format!(
            "{other} for nearly every device: the provider setup is probably wrong ({platform}, {environment})"
        ),
    }
}

/// What an operator should fix, in plain words, for an app-wide
/// configuration error the provider named.
pub fn config_hint(platform: Platform, environment: Environment, reason: &str) -> String {
    let code = code(reason);
    let what = match code {
        "BadTopic" | "TopicDisallowed" | "MissingTopic" => {
            "the apns-topic (`topic`) is not a bundle id this key or certificate may send to"
        }
        "InvalidPushType" => "the apns-push-type is not one APNs accepts for this topic",
        "BadCertificate" | "Forbidden" => {
            "the client certificate is not valid for APNs or for this topic"
        }
        "BadCertificateEnvironment" => {
            "the certificate is for the other APNs environment (development vs production)"
        }
        "BadEnvironmentKeyInToken" => "the .p8 key is restricted to the other APNs environment",
        "UnrelatedKeyIdInToken" => "the key_id does not belong to this team_id",
        "InvalidProviderToken" | "MissingProviderToken" => {
            "the provider token is not accepted: check team_id, key_id and key_file"
        }
        "THIRD_PARTY_AUTH_ERROR" => {
            "the APNs key or certificate uploaded to Firebase is missing or wrong"
        }
        "PERMISSION_DENIED" | "SENDER_ID_MISMATCH" => {
            "the service account may not send for this Firebase project"
        }
        _ => "the provider rejected this app's setup: check its provider settings",
    };
    format!("{code}: {what} ({platform}, {environment})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rej(id: i64, reason: &str) -> Rejection<'_> {
        Rejection {
            delivery_id: id,
            device_id: id + 1000,
            reason,
        }
    }

    #[test]
    fn a_burst_of_rejections_trips_and_names_the_casualties() {
        let rule = GuardRule::default();
        let mut g = Guard::default();
        let now = Utc::now();
        let pause = now + Duration::from_secs(60);
        for i in 0..9 {
            assert_eq!(
                g.reject(&rule, &rej(i, "DeviceTokenNotForTopic"), now, pause),
                Decision::Invalidate
            );
        }
        let Decision::Trip {
            casualties, reason, ..
        } = g.reject(&rule, &rej(9, "DeviceTokenNotForTopic"), now, pause)
        else {
            panic!("the tenth rejection in a row trips");
        };
        assert_eq!(casualties.len(), 9);
        assert!(casualties.iter().all(|c| c.delivery_id < 9));
        assert_eq!(reason, "DeviceTokenNotForTopic");
        // Paused: nothing is believed.
        assert_eq!(
            g.reject(&rule, &rej(10, "BadDeviceToken"), now, pause),
            Decision::Withhold
        );
    }

    #[test]
    fn a_dormant_campaign_with_a_quarter_dead_tokens_never_trips() {
        let rule = GuardRule::default();
        let mut g = Guard::default();
        let mut now = Utc::now();
        let mut invalidated = 0;
        for i in 0..2000 {
            now += Duration::from_millis(5);
            if i % 4 == 0 {
                match g.reject(&rule, &rej(i, "Unregistered"), now, now) {
                    Decision::Invalidate => invalidated += 1,
                    d => panic!("25 % dead tokens must not trip: {d:?}"),
                }
            } else {
                g.answer(&rule, true, now);
            }
        }
        assert_eq!(invalidated, 500);
    }

    #[test]
    fn after_the_pause_nothing_is_invalidated_until_a_success() {
        let rule = GuardRule::default();
        let mut g = Guard::default();
        let now = Utc::now();
        let pause = now + Duration::from_secs(60);
        for i in 0..10 {
            g.reject(&rule, &rej(i, "BadDeviceToken"), now, pause);
        }
        let later = pause + Duration::from_secs(1);
        let again = later + Duration::from_secs(60);
        // Still wrong: probes are withheld, and a new burst trips again
        // with nothing to restore.
        for i in 0..9 {
            assert_eq!(
                g.reject(&rule, &rej(100 + i, "BadDeviceToken"), later, again),
                Decision::Withhold
            );
        }
        match g.reject(&rule, &rej(109, "BadDeviceToken"), later, again) {
            Decision::Trip { casualties, .. } => assert!(casualties.is_empty()),
            d => panic!("a still-wrong configuration trips again: {d:?}"),
        }
        // Fixed: the first success ends probation.
        let fixed = again + Duration::from_secs(1);
        g.answer(&rule, true, fixed);
        assert_eq!(
            g.reject(&rule, &rej(200, "Unregistered"), fixed, fixed),
            Decision::Invalidate
        );
    }

    #[test]
    fn old_answers_are_forgotten() {
        let rule = GuardRule::default();
        let mut g = Guard::default();
        let start = Utc::now();
        // Ten rejections spread over ten minutes are no burst.
        for i in 0..10 {
            let at = start + Duration::from_secs(60 * i as u64 + 61);
            assert_eq!(
                g.reject(&rule, &rej(i, "Unregistered"), at, at),
                Decision::Invalidate
            );
        }
    }

    #[test]
    fn hints_name_the_likely_mistake() {
        let h = hint(
            Platform::Ios,
            Environment::Production,
            "DeviceTokenNotForTopic",
        );
        assert!(h.contains("bundle id"), "{h}");
        let h = hint(Platform::Ios, Environment::Sandbox, "BadDeviceToken");
        assert!(h.contains("gateway"), "{h}");
        let h = hint(
            Platform::Android,
            Environment::Production,
            "SENDER_ID_MISMATCH: x",
        );
        assert!(h.contains("Firebase project"), "{h}");
    }
}

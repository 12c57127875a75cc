//! The executor: everything that happens to one leased delivery, from the
//! checks before sending to the verdict, as a [`Completion`] for the
//! completer. It never fails: every problem — including a panic in
//! rendering or in a provider client — becomes a recorded outcome.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::breaker::{Change, Holds};
use super::guard::{self, Decision, Rejection};
use super::retry::{self, Verdict};
use crate::config::Settings;
use crate::content::Options;
use crate::model::{AttemptOutcome, DeliveryState, Environment, Platform};
use crate::providers::{Accepted, Message, Providers, SendError};
use crate::store::deliveries::{Completion, EndpointUpdate, Invalidation, Receipt, Undo};
use crate::store::notifications::Content;
use crate::templates::{Rendered, Templates};

/// A delivery leased to this process, ready to be sent.
#[derive(Debug)]
pub(crate) struct Job {
    pub delivery_id: i64,
    pub device_id: i64,
    /// `None` when the device row no longer exists.
    pub token: Option<String>,
    pub environment: Environment,
    pub locale: String,
    /// SNS: the device's platform endpoint and whether it must be checked
    /// before publishing (see `providers::sns`).
    pub endpoint_arn: Option<String>,
    pub endpoint_stale: bool,
    /// Tries that use up the retry budget, this one included.
    pub attempts: i32,
    /// Every try, this one included: the receipt's number.
    pub tries: i32,
    pub invalidated: Option<(DateTime<Utc>, Option<String>)>,
    pub content: Arc<Content>,
    /// When the notification was enqueued, for
    /// `pushrelay_enqueue_to_accepted_seconds`; `None` when unknown.
    pub enqueued_at: Option<DateTime<Utc>>,
}

/// What the executor needs from its process.
pub(crate) struct Executor {
    pub settings: Arc<Settings>,
    pub providers: Providers,
    pub templates: Arc<Templates>,
}

/// One try at the provider, as the verdict needs it.
struct Try {
    provider: &'static str,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    result: Result<Accepted, SendError>,
    /// No answer within `worker.send_timeout_ms`.
    timed_out: bool,
}

/// Settled without a send: the claimed attempt and try are given back.
fn unsent(job: &Job, state: DeliveryState, error: Option<String>) -> Completion {
    Completion {
        delivery_id: job.delivery_id,
        state,
        next_attempt_at: None,
        undo: Undo::AttemptAndTry,
        provider_message_id: None,
        last_error: error,
        receipt: None,
        invalidate: None,
        endpoint: None,
    }
}

/// A now-or-never (`ttl_seconds = 0`) delivery is never tried again: a
/// verdict that would retry, resend or wait out a pause ends it as expired,
/// saying why.
fn now_or_never(mut done: Completion) -> Completion {
    if done.state == DeliveryState::Pending {
        let why = done.last_error.take().unwrap_or_default();
        done.state = DeliveryState::Expired;
        done.next_attempt_at = None;
        done.last_error = Some(format!(
            "expired: ttl_seconds = 0 (now or never) allows one try only, and it failed: {why}"
        ));
    }
    done
}

impl Executor {
    /// Checks, renders, sends and classifies one delivery.
    pub async fn execute(&self, holds: &Holds, platform: Platform, job: &Job) -> Completion {
        let c = &job.content;
        let settings = &self.settings;
        let schedule = settings.retry.schedule(c.priority);

        if let Some((at, why)) = &job.invalidated {
            let why = why.as_deref().unwrap_or("no reason recorded");
            return unsent(
                job,
                DeliveryState::Failed,
                Some(format!(
                    "not sent: the device was invalidated at {at} ({why})"
                )),
            );
        }
        let Some(token) = job.token.as_deref() else {
            return unsent(
                job,
                DeliveryState::Failed,
                Some(format!(
                    "not sent: device {} no longer exists",
                    job.device_id
                )),
            );
        };
        if let Some(reason) = retry::expired_before_send(c.expires_at, Utc::now()) {
            return unsent(job, DeliveryState::Expired, Some(reason));
        }
        if job.attempts as u32 > schedule.max_attempts {
            return unsent(
                job,
                DeliveryState::Failed,
                Some(format!(
                    "gave up: {} attempts already made",
                    schedule.max_attempts
                )),
            );
        }
        let (Some(app), Some(provider)) = (
            settings.apps.get(&c.app),
            self.providers.get(&c.app, platform),
        ) else {
            return unsent(
                job,
                DeliveryState::Failed,
                Some(format!(
                    "app {:?} has no {platform} provider configured; add [apps.{}.{platform}] to config.toml",
                    c.app, c.app
                )),
            );
        };
        if c.now_or_never && job.tries > 1 {
            // A rescued or re-claimed now-or-never delivery: its one try
            // was made (or its moment passed).
            return unsent(
                job,
                DeliveryState::Expired,
                Some("not sent again: ttl_seconds = 0 (now or never) allows one try only".into()),
            );
        }
        let options = match &c.options.0 {
            Some(Ok(o)) => o.clone(),
            Some(Err(e)) => {
                return unsent(job, DeliveryState::Failed, Some(format!("not sent: {e}")))
            }
            None if c.template.is_none() && c.body.is_none() => {
                return unsent(
                    job,
                    DeliveryState::Failed,
                    Some(format!("not sent: notification {} no longer exists", c.id)),
                )
            }
            None => Options::default(),
        };
        let content = match &c.template {
            Some(name) => {
                self.templates
                    .render(name, &job.locale, &app.default_locale, &c.data, options)
            }
            None => Ok(Rendered {
                options,
                ..Rendered::inline(c.title.as_deref(), c.body.as_deref().unwrap_or(""), &c.data)
            }),
        };
        let content = match content {
            Ok(content) => content,
            Err(e) => return unsent(job, DeliveryState::Failed, Some(e.to_string())),
        };
        let msg = Message {
            platform,
            token,
            environment: job.environment,
            priority: c.priority,
            collapse_key: c.collapse_key.as_deref(),
            notification_id: c.id,
            expires_at: c.expires_at,
            now_or_never: c.now_or_never,
            content: &content,
            device_id: job.device_id,
            endpoint_arn: job.endpoint_arn.as_deref(),
            endpoint_stale: job.endpoint_stale,
        };

        // The provider's rate limit, outside the send timeout (see `admit`).
        provider.admit(c.priority).await;
        if let Some(reason) = retry::expired_before_send(c.expires_at, Utc::now()) {
            return unsent(job, DeliveryState::Expired, Some(reason));
        }
        let started_at = Utc::now();
        let clock = Instant::now();
        let timeout = settings.worker.send_timeout();
        let (result, timed_out) = match tokio::time::timeout(timeout, provider.send(&msg)).await {
            Ok(r) => (r, false),
            Err(_) => (
                Err(SendError::Transient {
                    status: None,
                    reason: format!("no answer within {} ms", timeout.as_millis()),
                    retry_after: None,
                }),
                true,
            ),
        };
        let finished_at = started_at + clock.elapsed();
        let done = self.conclude(
            holds,
            platform,
            job,
            Try {
                provider: provider.name(),
                started_at,
                finished_at,
                result,
                timed_out,
            },
        );
        if c.now_or_never {
            now_or_never(done)
        } else {
            done
        }
    }

    /// A panic while handling `job` (a bug): recorded as a transient
    /// failure of that delivery, so it is retried like any other.
    pub fn panicked(
        &self,
        holds: &Holds,
        platform: Platform,
        job: &Job,
        panic: Box<dyn Any + Send>,
    ) -> Completion {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        tracing::error!(
            delivery = job.delivery_id,
            notification = %job.content.id,
            %platform,
            panic = %message,
            "sending a delivery panicked (a bug); it is recorded as a transient failure and retried"
        );
        let now = Utc::now();
        let provider = self
            .providers
            .get(&job.content.app, platform)
            .map_or("(none)", |p| p.name());
        self.conclude(
            holds,
            platform,
            job,
            Try {
                provider,
                started_at: now,
                finished_at: now,
                result: Err(SendError::Transient {
                    status: None,
                    reason: format!("internal error: the send panicked: {message}"),
                    retry_after: None,
                }),
                timed_out: false,
            },
        )
    }

    /// The verdict on a try, as a completion with its receipt.
    fn conclude(&self, holds: &Holds, platform: Platform, job: &Job, t: Try) -> Completion {
        let Try {
            provider,
            started_at,
            finished_at,
            result,
            timed_out,
        } = t;
        let (status, provider_message_id, endpoint, error) = match result {
            Ok(a) => (a.status, a.provider_message_id, a.endpoint_arn, None),
            Err(e) => (e.status(), None, None, Some(e)),
        };
        // The breaker judges the provider's answers: an HTTP status, or
        // none within the send timeout. A request that failed on the
        // connection (reset, refused) got no answer at all: one dead
        // connection fails every stream in flight on it, which says
        // nothing about the provider.
        let answered = timed_out || status.is_some();
        let c = &job.content;
        let settings = &self.settings;
        let verdict = retry::decide(
            error.as_ref(),
            retry::Attempt {
                number: job.attempts as u32,
                tries: job.tries as u32,
                schedule: settings.retry.schedule(c.priority),
                expires_at: c.expires_at,
                now: finished_at,
                jitter: fastrand::f64(),
                config_pause: Duration::from_secs(settings.worker.config_error_pause_secs),
            },
        );
        let label = reason_label(error.as_ref(), timed_out);
        // One shared copy of the app's name for every label of this send
        // and for the receipt's outcome count (cloning it per use would
        // allocate each time).
        let app: Arc<str> = Arc::from(c.app.as_str());
        let receipt = Receipt {
            app: app.clone(),
            platform,
            label,
            attempt: job.tries,
            provider,
            started_at,
            finished_at,
            outcome: error
                .as_ref()
                .map_or(AttemptOutcome::Delivered, SendError::outcome),
            status_code: status.map(i32::from),
            reason: error.as_ref().map(|e| e.reason().to_owned()),
        };
        let mut done = Completion {
            delivery_id: job.delivery_id,
            state: DeliveryState::Pending,
            next_attempt_at: None,
            undo: Undo::Nothing,
            provider_message_id,
            last_error: error.as_ref().map(ToString::to_string),
            receipt: None,
            invalidate: None,
            endpoint: endpoint.map(|arn| EndpointUpdate {
                device_id: job.device_id,
                token: job.token.clone().unwrap_or_default(),
                arn,
            }),
        };
        let env = job.environment;
        let config_pause = Duration::from_secs(settings.worker.config_error_pause_secs);
        match verdict {
            Verdict::Delivered => {
                holds.record_success(&c.app, env, finished_at);
                done.state = DeliveryState::Delivered;
            }
            Verdict::RetryAt(at) if !answered => {
                done.next_attempt_at = Some(at);
            }
            Verdict::RetryAt(at) => {
                if let Change::Opened { until } = holds.record_transient(&c.app, env, finished_at) {
                    metrics::counter!("pushrelay_provider_holds_total", "platform" => platform.as_str(), "reason" => "breaker").increment(1);
                    tracing::warn!(app = %c.app, %platform, environment = %env, %until, "most recent sends failed with transient errors: holding this app environment's sends (circuit breaker open)");
                }
                done.next_attempt_at = Some(at);
            }
            Verdict::Resend { at, reason } => {
                // Never counted by the breaker: a dropped connection says
                // nothing about the provider's answers.
                tracing::debug!(delivery = job.delivery_id, %reason, "connection lost mid-send: resending shortly, attempt not counted");
                done.next_attempt_at = Some(at);
                done.undo = Undo::Attempt;
            }
            Verdict::Failed(reason) => {
                if matches!(error, Some(SendError::Permanent { .. })) {
                    holds.record_other(&c.app, env, finished_at);
                }
                done.state = DeliveryState::Failed;
                done.last_error = Some(reason);
            }
            Verdict::Expired(reason) => {
                done.state = DeliveryState::Expired;
                done.last_error = Some(reason);
            }
            Verdict::TokenDead(reason) => {
                let provider_reason = error.as_ref().map_or("", SendError::reason);
                let pause_until = finished_at + config_pause;
                let decision = holds.record_rejection(
                    &c.app,
                    env,
                    &Rejection {
                        delivery_id: job.delivery_id,
                        device_id: job.device_id,
                        reason: provider_reason,
                    },
                    finished_at,
                    pause_until,
                    |r| guard::hint(platform, env, r),
                );
                match decision {
                    Decision::Invalidate => {
                        done.state = DeliveryState::TokenDead;
                        let since = match &error {
                            Some(SendError::TokenDead { since, .. }) => *since,
                            _ => None,
                        };
                        done.invalidate = Some(Invalidation {
                            device_id: job.device_id,
                            reason: reason.clone(),
                            since,
                        });
                        done.last_error = Some(reason);
                    }
                    Decision::Trip {
                        casualties,
                        reason: burst,
                        ..
                    } => {
                        metrics::counter!("pushrelay_provider_holds_total", "platform" => platform.as_str(), "reason" => "guard").increment(1);
                        metrics::counter!("pushrelay_guard_trips_total", "platform" => platform.as_str(), "environment" => env.as_str()).increment(1);
                        tracing::error!(app = %c.app, %platform, environment = %env, until = %pause_until,
                            restored = casualties.len(), hint = %guard::hint(platform, env, &burst),
                            "nearly every device was rejected as {burst}: this looks like a provider misconfiguration, not dead devices; sends paused, no device invalidated (those already were are restored)");
                        done.next_attempt_at = Some(pause_until);
                        done.undo = Undo::Attempt;
                        done.last_error = Some(format!(
                            "not believed (a burst of token rejections; sends paused): {reason}"
                        ));
                    }
                    Decision::Withhold => {
                        let at = holds
                            .held_until(&c.app, env, finished_at)
                            .unwrap_or(pause_until);
                        done.next_attempt_at = Some(at);
                        done.undo = Undo::Attempt;
                        done.last_error = Some(format!("not believed until a send succeeds again after a pause for a burst of token rejections: {reason}"));
                    }
                }
            }
            Verdict::PauseProvider { until, reason } => {
                let hint =
                    guard::config_hint(platform, env, error.as_ref().map_or("", SendError::reason));
                // A pause the provider asked for (a quota, token updates)
                // passes by itself; a rejected setup needs the operator.
                let asked = matches!(error, Some(SendError::Config { pause: Some(_), .. }));
                if let Change::Opened { until } =
                    holds.hold(&c.app, env, until, &reason, hint.clone())
                {
                    let why = if asked {
                        "provider_pause"
                    } else {
                        "config_error"
                    };
                    metrics::counter!("pushrelay_provider_holds_total", "platform" => platform.as_str(), "reason" => why).increment(1);
                    if asked {
                        tracing::warn!(app = %c.app, %platform, environment = %env, %until, %reason,
                            "the provider asked for a pause: this app environment's sends wait until it ends");
                    } else {
                        tracing::error!(app = %c.app, %platform, environment = %env, %until, %reason, %hint,
                            "the provider rejected this app's setup: its sends in this environment are paused; fix the app's provider settings");
                    }
                }
                done.next_attempt_at = Some(until);
                done.undo = Undo::Attempt;
            }
        }
        let reason = label;
        let app = metrics::SharedString::from_shared(app);
        metrics::counter!("pushrelay_attempts_total", "app" => app.clone(), "platform" => platform.as_str(),
            "provider" => provider, "outcome" => receipt.outcome.as_str(), "reason" => reason)
        .increment(1);
        metrics::histogram!("pushrelay_send_duration_seconds", "app" => app.clone(), "platform" => platform.as_str())
            .record(seconds(finished_at - started_at));
        if done.state == DeliveryState::Pending && done.undo != Undo::Attempt && !c.now_or_never {
            // A retry the schedule decided: not a pause, not a resend of a
            // request the provider never saw, not a now-or-never try (it
            // ends expired instead).
            metrics::counter!("pushrelay_retries_scheduled_total", "app" => app.clone(), "platform" => platform.as_str())
                .increment(1);
        }
        if done.invalidate.is_some() {
            metrics::counter!("pushrelay_devices_invalidated_total", "app" => app.clone(),
                "platform" => platform.as_str(), "reason" => reason)
            .increment(1);
        }
        if done.state == DeliveryState::Delivered {
            if let Some(enqueued_at) = job.enqueued_at {
                metrics::histogram!("pushrelay_enqueue_to_accepted_seconds", "app" => app,
                    "platform" => platform.as_str(), "priority" => c.priority.as_str())
                .record(seconds(finished_at - enqueued_at));
            }
        }
        done.receipt = Some(receipt);
        done
    }

    /// The app is on hold: back to the queue until the hold ends, nothing
    /// counted (fan-out leases before it knows about holds).
    pub fn held(job: &Job, until: DateTime<Utc>) -> Completion {
        Completion {
            next_attempt_at: Some(until),
            ..unsent(job, DeliveryState::Pending, None)
        }
    }
}

/// A duration in seconds, for a histogram; never negative (clocks of
/// two hosts may disagree).
fn seconds(d: chrono::TimeDelta) -> f64 {
    (d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0)
}

/// Reasons a provider documents (Apple's APNs reasons; FCM's error codes
/// and google.rpc statuses; SNS's), used as they are for the `reason`
/// label. A reason is text the provider sent, so anything else is folded
/// into a category: a label's values must stay a short, fixed list.
const KNOWN_REASONS: &[&str] = &[
    // APNs
    "BadCollapseId",
    "BadDeviceToken",
    "BadExpirationDate",
    "BadMessageId",
    "BadPriority",
    "BadTopic",
    "DeviceTokenNotForTopic",
    "DuplicateHeaders",
    "IdleTimeout",
    "InvalidPushType",
    "MissingDeviceToken",
    "MissingTopic",
    "PayloadEmpty",
    "TopicDisallowed",
    "BadCertificate",
    "BadCertificateEnvironment",
    "ExpiredProviderToken",
    "Forbidden",
    "InvalidProviderToken",
    "MissingProviderToken",
    "UnrelatedKeyIdInToken",
    "BadEnvironmentKeyInToken",
    "BadPath",
    "MethodNotAllowed",
    "ExpiredToken",
    "Unregistered",
    "PayloadTooLarge",
    "TooManyProviderTokenUpdates",
    "TooManyRequests",
    "InternalServerError",
    "ServiceUnavailable",
    "Shutdown",
    // FCM error codes
    "UNSPECIFIED_ERROR",
    "INVALID_ARGUMENT",
    "UNREGISTERED",
    "SENDER_ID_MISMATCH",
    "QUOTA_EXCEEDED",
    "UNAVAILABLE",
    "INTERNAL",
    "THIRD_PARTY_AUTH_ERROR",
    // google.rpc statuses (an FCM answer without an FCM code)
    "NOT_FOUND",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "UNAUTHENTICATED",
    "DEADLINE_EXCEEDED",
    "FAILED_PRECONDITION",
    // SNS
    "EndpointDisabled",
    "InvalidParameter",
    "PlatformApplicationDisabled",
    "Throttling",
];

/// The `reason` label of an attempt: `none` when delivered; the provider's
/// documented reason (the first word of what it answered, as APNs reasons
/// and FCM codes are recorded); otherwise `timeout`, `connection_lost`,
/// `unrecognized` (an answer with an undocumented reason) or `local`
/// (refused before sending, e.g. a payload too big).
pub(crate) fn reason_label(error: Option<&SendError>, timed_out: bool) -> &'static str {
    let Some(error) = error else {
        return "none";
    };
    if timed_out {
        return "timeout";
    }
    if matches!(error, SendError::ConnectionLost { .. }) {
        return "connection_lost";
    }
    let word = error
        .reason()
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    match KNOWN_REASONS.iter().find(|r| **r == word) {
        Some(known) => known,
        None if error.status().is_some() => "unrecognized",
        None => "local",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_labels_are_documented_reasons_or_a_category() {
        let transient = |status, reason: &str| SendError::Transient {
            status,
            reason: reason.into(),
            retry_after: None,
        };
        assert_eq!(reason_label(None, false), "none");
        assert_eq!(
            reason_label(Some(&transient(Some(503), "ServiceUnavailable")), false),
            "ServiceUnavailable"
        );
        // FCM reasons are recorded as "CODE: message".
        assert_eq!(
            reason_label(
                Some(&SendError::TokenDead {
                    status: Some(404),
                    reason: "UNREGISTERED: Requested entity was not found.".into(),
                    since: None
                }),
                false
            ),
            "UNREGISTERED"
        );
        // Whatever a provider (or a proxy in front of it) makes up stays
        // out of the label values.
        assert_eq!(
            reason_label(
                Some(&transient(Some(502), "<html>Bad gateway 8f3a</html>")),
                false
            ),
            "unrecognized"
        );
        assert_eq!(
            reason_label(Some(&transient(None, "no answer within 2000 ms")), true),
            "timeout"
        );
        assert_eq!(
            reason_label(
                Some(&SendError::ConnectionLost {
                    reason: "connection reset".into()
                }),
                false
            ),
            "connection_lost"
        );
        assert_eq!(
            reason_label(
                Some(&SendError::Permanent {
                    status: None,
                    reason: "message is too big: 5000 bytes".into()
                }),
                false
            ),
            "local"
        );
    }
}

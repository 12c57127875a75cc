//! The notification page's timeline: everything that happened to a
//! notification, in the order it happened — created, scheduled, fanned
//! out, every attempt at every device with the provider's answer, a dead
//! token's device invalidated, what the apps reported back, cancelled,
//! expired, and the next try still to come.
//!
//! Events keep their raw fields (times as instants, the attempt's status
//! code and reason, latency, next retry) beside the words, so a template
//! can lay them out as a table and format the times in the support team's
//! zone; the words themselves hold no time of day for the same reason.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::verdict::{device_label, provider_name};
use crate::model::{AttemptOutcome, DeliveryState, NotificationState};
use crate::store::status::{AttemptStatus, DeliveryStatus, NotificationStatus};

/// What kind of thing happened, for a template's icon or class; in the
/// order same-instant events are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Created,
    Scheduled,
    FannedOut,
    NotSent,
    Attempt,
    Invalidated,
    GaveUp,
    Receipt,
    Cancelled,
    Expired,
    NextTry,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: Kind,
    /// Plain words: "Delivered", "Failed; retry scheduled".
    pub what: String,
    /// The device it concerns: "iOS …c5d6".
    pub device: Option<String>,
    /// "APNs · HTTP 503 ServiceUnavailable · 182 ms".
    pub detail: Option<String>,
    /// An attempt's raw fields (for `kind == Attempt`).
    pub attempt: Option<AttemptRow>,
}

/// One send attempt, as a row of the attempts table.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub delivery_id: i64,
    pub device_id: i64,
    /// "iOS …c5d6".
    pub device: String,
    /// The attempt's number for its delivery (1, 2, …).
    pub number: i32,
    pub started_at: DateTime<Utc>,
    /// "APNs", "FCM".
    pub provider: String,
    /// "HTTP 503 ServiceUnavailable", "HTTP 200", "no answer within 2000 ms".
    pub answer: String,
    pub status_code: Option<i32>,
    pub reason: Option<String>,
    pub latency_ms: i32,
    pub outcome: AttemptOutcome,
    /// "Failed; retry scheduled".
    pub outcome_words: String,
    pub retry_at: Option<DateTime<Utc>>,
}

/// Everything that happened to `n`, oldest first (same-instant events in
/// the order of [`Kind`]); the next try still to come, if any, last.
pub fn timeline(n: &NotificationStatus) -> Vec<Event> {
    let mut events = Vec::new();
    let event = |at, kind, what: &str| Event {
        at,
        kind,
        what: what.to_owned(),
        device: None,
        detail: None,
        attempt: None,
    };

    let mut created = event(n.created_at, Kind::Created, "Created");
    created.detail = Some(created_detail(n));
    events.push(created);
    if n.send_at > n.created_at {
        events.push(event(n.send_at, Kind::Scheduled, "Scheduled to be sent"));
    }
    if let Some(at) = n.fanned_out_at {
        let mut e = match n.state {
            NotificationState::Expired => event(at, Kind::Expired, "Expired before it was sent"),
            NotificationState::NoDevices => event(at, Kind::NotSent, "Not sent: no active device"),
            NotificationState::Failed => event(at, Kind::NotSent, "Not sent"),
            _ => {
                let k = n.deliveries.len();
                let devices = if k == 1 { "device" } else { "devices" };
                event(at, Kind::FannedOut, &format!("Fanned out to {k} {devices}"))
            }
        };
        e.detail = n.state_reason.clone();
        events.push(e);
    }
    if let Some(at) = n.cancelled_at {
        let mut e = event(at, Kind::Cancelled, "Cancelled");
        let stopped = n
            .deliveries
            .iter()
            .filter(|d| d.state == DeliveryState::Cancelled)
            .count();
        e.detail = match (n.state, stopped) {
            (NotificationState::Cancelled, _) => n.state_reason.clone(),
            (_, 0) => Some("too late: nothing was left to stop".to_owned()),
            (_, 1) => Some("1 delivery not yet sent was stopped".to_owned()),
            (_, k) => Some(format!("{k} deliveries not yet sent were stopped")),
        };
        events.push(e);
    }

    for d in &n.deliveries {
        let device = device_label(d);
        let on = |mut e: Event| {
            e.device = Some(device.clone());
            e
        };
        for a in &d.history {
            let row = attempt_row(d, a, &device);
            let mut e = on(event(a.started_at, Kind::Attempt, &row.outcome_words));
            e.detail = Some(format!(
                "{} · {} · {} ms",
                row.provider, row.answer, row.latency_ms
            ));
            e.attempt = Some(row);
            events.push(e);
        }
        let last = d.history.last();
        let settled_at = last.map(finished_at);
        match d.state {
            DeliveryState::TokenDead => {
                let mut e = on(event(
                    settled_at.unwrap_or(n.created_at),
                    Kind::Invalidated,
                    "Device invalidated: its token is dead",
                ));
                e.detail = Some("no more notifications are sent to it".to_owned());
                events.push(e);
            }
            DeliveryState::Failed => match last {
                // A refusal says it all in its own row; running out of
                // tries does not.
                Some(a) if a.outcome == AttemptOutcome::Permanent => {}
                Some(a) => {
                    let mut e = on(event(finished_at(a), Kind::GaveUp, "Gave up"));
                    e.detail = d.last_error.clone();
                    events.push(e);
                }
                None => {
                    let at = n.fanned_out_at.unwrap_or(n.created_at);
                    let mut e = on(event(at, Kind::NotSent, "Not sent"));
                    e.detail = d.last_error.clone();
                    events.push(e);
                }
            },
            DeliveryState::Expired => {
                let at = settled_at.unwrap_or(n.expires_at);
                let mut e = on(event(at, Kind::Expired, "Expired"));
                e.detail = d.last_error.clone();
                events.push(e);
            }
            DeliveryState::Pending => {
                if let Some(at) = d.next_attempt_at {
                    // A retry an attempt already announced is in its row.
                    if last.and_then(|a| a.retry_at) != Some(at) {
                        let mut e = on(event(at, Kind::NextTry, "Next try"));
                        e.detail = d.last_error.clone();
                        events.push(e);
                    }
                }
            }
            DeliveryState::Delivered | DeliveryState::Sending | DeliveryState::Cancelled => {}
        }
        for r in &d.receipts {
            let what = match r.event.as_str() {
                "received" => "Received on the device",
                "displayed" => "Displayed on the device",
                "opened" => "Opened on the device",
                other => other,
            };
            events.push(on(event(r.occurred_at, Kind::Receipt, what)));
        }
    }
    events.sort_by_key(|e| (e.kind == Kind::NextTry, e.at, e.kind));
    events
}

/// Every attempt of `n`, in the order they started: the attempts table.
pub fn attempts(n: &NotificationStatus) -> Vec<AttemptRow> {
    let mut rows: Vec<AttemptRow> = n
        .deliveries
        .iter()
        .flat_map(|d| {
            let device = device_label(d);
            d.history.iter().map(move |a| attempt_row(d, a, &device))
        })
        .collect();
    rows.sort_by_key(|r| (r.started_at, r.delivery_id, r.number));
    rows
}

fn attempt_row(d: &DeliveryStatus, a: &AttemptStatus, device: &str) -> AttemptRow {
    let answer = match (a.status_code, a.reason.as_deref()) {
        (Some(s), Some(r)) => format!("HTTP {s} {r}"),
        (Some(s), None) => format!("HTTP {s}"),
        (None, Some(r)) => r.to_owned(),
        (None, None) => "no answer recorded".to_owned(),
    };
    AttemptRow {
        delivery_id: d.id,
        device_id: d.device_id,
        device: device.to_owned(),
        number: a.attempt,
        started_at: a.started_at,
        provider: provider_name(&a.provider),
        answer,
        status_code: a.status_code,
        reason: a.reason.clone(),
        latency_ms: a.latency_ms,
        outcome: a.outcome,
        outcome_words: outcome_words(d, a),
        retry_at: a.retry_at,
    }
}

/// What one attempt came to, given what became of its delivery after it.
fn outcome_words(d: &DeliveryStatus, a: &AttemptStatus) -> String {
    let last = d.history.last().is_some_and(|l| l.attempt == a.attempt);
    let words = match a.outcome {
        AttemptOutcome::Delivered => "Delivered",
        AttemptOutcome::Transient if a.retry_at.is_some() => "Failed; retry scheduled",
        AttemptOutcome::Transient if last => match d.state {
            DeliveryState::Failed => "Failed; gave up",
            DeliveryState::Expired => "Failed; expired before another try",
            DeliveryState::Cancelled => "Failed; not retried (cancelled)",
            _ => "Failed",
        },
        AttemptOutcome::Transient => "Failed",
        AttemptOutcome::Permanent => "Refused; not retried",
        AttemptOutcome::TokenDead if a.retry_at.is_some() => {
            "Token rejected; not believed during a burst of rejections, retry scheduled"
        }
        AttemptOutcome::TokenDead => "Token dead",
        AttemptOutcome::ConfigError => "Provider setup rejected; sends paused",
        AttemptOutcome::Lost if a.retry_at.is_some() => {
            "Lost: the sending process stopped reporting; queued again"
        }
        AttemptOutcome::Lost => "Lost: the sending process stopped reporting",
    };
    words.to_owned()
}

/// When the provider's answer came.
fn finished_at(a: &AttemptStatus) -> DateTime<Utc> {
    a.started_at + chrono::Duration::milliseconds(i64::from(a.latency_ms))
}

/// Who it was for, what it said, how urgent, and where it came from.
fn created_detail(n: &NotificationStatus) -> String {
    let mut parts = Vec::new();
    match (&n.user_id, &n.device_ids) {
        (Some(user), _) => parts.push(format!("for user {user} in app {}", n.app)),
        (None, Some(ids)) => parts.push(format!("for {} devices in app {}", ids.len(), n.app)),
        (None, None) => parts.push(format!("in app {}", n.app)),
    }
    match (&n.template, &n.title) {
        (Some(t), _) => parts.push(format!("template {t}")),
        (None, Some(title)) => parts.push(format!("“{title}”")),
        (None, None) => {}
    }
    parts.push(format!("{} priority", n.priority));
    if n.ttl_seconds == 0 {
        parts.push("now or never (one try)".to_owned());
    }
    if let Some(name) = &n.campaign_name {
        parts.push(format!("campaign {name}"));
    }
    if let Some(key) = &n.idempotency_key {
        parts.push(format!("idempotency key {key}"));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::fixtures::{self, at, attempt};
    use crate::model::{Platform, Priority};
    use crate::store::status::DeviceReceipt;

    /// The shared fixture, with an idempotency key and fanned out.
    fn notification(state: NotificationState) -> NotificationStatus {
        let mut n = fixtures::notification(state);
        n.idempotency_key = Some("order-17".into());
        n.fanned_out_at = Some(at(10, 41, 1));
        n
    }

    /// A device whose masked token ends in `c5d<id>`.
    fn delivery(id: i64, platform: Platform, state: DeliveryState) -> DeliveryStatus {
        fixtures::delivery(id, platform, &format!("a1b2c3{:0>54}c5d{id}", 0), state)
    }

    fn kinds(events: &[Event]) -> Vec<(Kind, &str)> {
        events.iter().map(|e| (e.kind, e.what.as_str())).collect()
    }

    #[test]
    fn a_retried_delivery_and_a_dead_token_in_order() {
        let mut n = notification(NotificationState::Dispatched);
        let mut ios = delivery(1, Platform::Ios, DeliveryState::Delivered);
        ios.history = vec![
            attempt(
                1,
                "apns",
                at(10, 41, 2),
                AttemptOutcome::Transient,
                Some(503),
                Some("ServiceUnavailable"),
                Some(at(10, 41, 10)),
            ),
            attempt(
                2,
                "apns",
                at(10, 41, 10),
                AttemptOutcome::Delivered,
                Some(200),
                None,
                None,
            ),
        ];
        ios.receipts.push(DeviceReceipt {
            delivery_id: 1,
            event: "opened".into(),
            occurred_at: at(10, 45, 12),
            reported_at: at(10, 45, 13),
        });
        let mut android = delivery(2, Platform::Android, DeliveryState::TokenDead);
        android.history.push(attempt(
            1,
            "fcm",
            at(10, 41, 3),
            AttemptOutcome::TokenDead,
            Some(404),
            Some("UNREGISTERED: Requested entity was not found."),
            None,
        ));
        n.deliveries = vec![ios, android];
        let events = timeline(&n);
        assert_eq!(
            kinds(&events),
            vec![
                (Kind::Created, "Created"),
                (Kind::FannedOut, "Fanned out to 2 devices"),
                (Kind::Attempt, "Failed; retry scheduled"),
                (Kind::Attempt, "Token dead"),
                (Kind::Invalidated, "Device invalidated: its token is dead"),
                (Kind::Attempt, "Delivered"),
                (Kind::Receipt, "Opened on the device"),
            ]
        );
        assert_eq!(
            events[0].detail.as_deref(),
            Some("for user bob in app bank · template otp · urgent priority · idempotency key order-17")
        );
        let first = &events[2];
        assert_eq!(first.device.as_deref(), Some("iOS …c5d1"));
        assert_eq!(
            first.detail.as_deref(),
            Some("APNs · HTTP 503 ServiceUnavailable · 182 ms")
        );
        let row = first.attempt.as_ref().unwrap();
        assert_eq!(
            (row.number, row.status_code, row.latency_ms),
            (1, Some(503), 182)
        );
        assert_eq!(row.retry_at, Some(at(10, 41, 10)));
        assert_eq!(events[4].device.as_deref(), Some("Android …c5d2"));
        assert_eq!(
            events[4].at,
            at(10, 41, 3) + chrono::Duration::milliseconds(182)
        );

        let rows = attempts(&n);
        assert_eq!(
            rows.iter()
                .map(|r| (r.device.as_str(), r.number, r.provider.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("iOS …c5d1", 1, "APNs"),
                ("Android …c5d2", 1, "FCM"),
                ("iOS …c5d1", 2, "APNs")
            ]
        );
        assert_eq!(
            rows[1].answer,
            "HTTP 404 UNREGISTERED: Requested entity was not found."
        );
        // Serialized for the template, with the kind as a word.
        let json = serde_json::to_value(&events[2]).unwrap();
        assert_eq!(json["kind"], "attempt");
        assert_eq!(json["attempt"]["outcome"], "transient");
    }

    #[test]
    fn scheduled_then_cancelled_before_fan_out() {
        let mut n = notification(NotificationState::Cancelled);
        n.send_at = at(17, 0, 0);
        n.fanned_out_at = None;
        n.cancelled_at = Some(at(10, 44, 0));
        n.state_reason = Some("cancelled through the API".into());
        let events = timeline(&n);
        assert_eq!(
            kinds(&events),
            vec![
                (Kind::Created, "Created"),
                (Kind::Cancelled, "Cancelled"),
                (Kind::Scheduled, "Scheduled to be sent"),
            ]
        );
        assert_eq!(
            events[1].detail.as_deref(),
            Some("cancelled through the API")
        );
        assert_eq!(events[2].at, at(17, 0, 0));
    }

    #[test]
    fn cancelled_after_fan_out_counts_what_it_stopped() {
        let mut n = notification(NotificationState::Dispatched);
        n.cancelled_at = Some(at(10, 42, 0));
        let mut stopped = delivery(1, Platform::Ios, DeliveryState::Cancelled);
        stopped.cancelled_at = n.cancelled_at;
        n.deliveries = vec![
            stopped,
            delivery(2, Platform::Android, DeliveryState::Cancelled),
        ];
        let events = timeline(&n);
        assert_eq!(events.last().unwrap().kind, Kind::Cancelled);
        assert_eq!(
            events.last().unwrap().detail.as_deref(),
            Some("2 deliveries not yet sent were stopped")
        );
        n.deliveries.truncate(1);
        n.deliveries[0].state = DeliveryState::Delivered;
        assert_eq!(
            timeline(&n).last().unwrap().detail.as_deref(),
            Some("too late: nothing was left to stop")
        );
    }

    #[test]
    fn a_pending_retry_comes_last_without_repeating_the_attempts_row() {
        let mut n = notification(NotificationState::Dispatched);
        let mut d = delivery(1, Platform::Android, DeliveryState::Pending);
        d.history.push(attempt(
            1,
            "fcm",
            at(10, 42, 0),
            AttemptOutcome::Transient,
            Some(503),
            Some("UNAVAILABLE"),
            Some(at(10, 43, 10)),
        ));
        d.next_attempt_at = Some(at(10, 43, 10));
        n.deliveries.push(d);
        assert!(timeline(&n).iter().all(|e| e.kind != Kind::NextTry));
        // Held by a pause before its first try: the next try is an event.
        let mut held = delivery(2, Platform::Ios, DeliveryState::Pending);
        held.next_attempt_at = Some(at(10, 40, 0));
        held.last_error = Some("sends paused".into());
        n.deliveries.push(held);
        let events = timeline(&n);
        let last = events.last().unwrap();
        assert_eq!((last.kind, last.at), (Kind::NextTry, at(10, 40, 0)));
        assert_eq!(last.detail.as_deref(), Some("sends paused"));
    }

    #[test]
    fn gave_up_expired_and_not_sent() {
        let mut n = notification(NotificationState::Dispatched);
        let mut gave_up = delivery(1, Platform::Ios, DeliveryState::Failed);
        gave_up.history.push(attempt(
            1,
            "apns",
            at(10, 42, 0),
            AttemptOutcome::Transient,
            Some(500),
            Some("InternalServerError"),
            None,
        ));
        gave_up.last_error = Some("gave up after 1 attempts".into());
        let mut refused = delivery(2, Platform::Ios, DeliveryState::Failed);
        refused.history.push(attempt(
            1,
            "apns",
            at(10, 42, 1),
            AttemptOutcome::Permanent,
            Some(400),
            Some("BadTopic"),
            None,
        ));
        let mut never = delivery(3, Platform::Android, DeliveryState::Failed);
        never.last_error = Some("not sent: device 30 no longer exists".into());
        let expired = delivery(4, Platform::Android, DeliveryState::Expired);
        n.deliveries = vec![gave_up, refused, never, expired];
        let events = timeline(&n);
        assert_eq!(
            kinds(&events),
            vec![
                (Kind::Created, "Created"),
                (Kind::FannedOut, "Fanned out to 4 devices"),
                (Kind::NotSent, "Not sent"),
                (Kind::Attempt, "Failed; gave up"),
                (Kind::GaveUp, "Gave up"),
                (Kind::Attempt, "Refused; not retried"),
                (Kind::Expired, "Expired"),
            ]
        );
        assert_eq!(events[6].at, n.expires_at);
    }

    #[test]
    fn settled_at_fan_out() {
        for (state, kind, what) in [
            (
                NotificationState::NoDevices,
                Kind::NotSent,
                "Not sent: no active device",
            ),
            (NotificationState::Failed, Kind::NotSent, "Not sent"),
            (
                NotificationState::Expired,
                Kind::Expired,
                "Expired before it was sent",
            ),
        ] {
            let mut n = notification(state);
            n.state_reason = Some("why".into());
            let events = timeline(&n);
            assert_eq!(
                kinds(&events),
                vec![(Kind::Created, "Created"), (kind, what)]
            );
            assert_eq!(events[1].detail.as_deref(), Some("why"));
        }
        // Not fanned out yet: only its creation.
        let mut n = notification(NotificationState::Pending);
        n.fanned_out_at = None;
        assert_eq!(kinds(&timeline(&n)), vec![(Kind::Created, "Created")]);
    }

    #[test]
    fn attempt_words_follow_what_came_after() {
        let mut d = delivery(1, Platform::Ios, DeliveryState::Expired);
        let t = attempt(
            1,
            "apns",
            at(10, 0, 0),
            AttemptOutcome::Transient,
            Some(503),
            None,
            None,
        );
        d.history.push(t.clone());
        assert_eq!(outcome_words(&d, &t), "Failed; expired before another try");
        d.state = DeliveryState::Cancelled;
        assert_eq!(outcome_words(&d, &t), "Failed; not retried (cancelled)");
        let withheld = attempt(
            1,
            "apns",
            at(10, 0, 0),
            AttemptOutcome::TokenDead,
            Some(410),
            Some("Unregistered"),
            Some(at(10, 5, 0)),
        );
        assert!(outcome_words(&d, &withheld).starts_with("Token rejected; not believed"));
        let lost = attempt(
            1,
            "(unknown)",
            at(10, 0, 0),
            AttemptOutcome::Lost,
            None,
            Some("the process stopped"),
            Some(at(10, 0, 1)),
        );
        assert_eq!(
            outcome_words(&d, &lost),
            "Lost: the sending process stopped reporting; queued again"
        );
        assert_eq!(attempt_row(&d, &lost, "iOS …c5d1").provider, "the provider");
        let config = attempt(
            1,
            "fcm",
            at(10, 0, 0),
            AttemptOutcome::ConfigError,
            Some(401),
            None,
            Some(at(10, 1, 0)),
        );
        let row = attempt_row(&d, &config, "x");
        assert_eq!(
            (row.answer.as_str(), row.outcome_words.as_str()),
            ("HTTP 401", "Provider setup rejected; sends paused")
        );
    }

    #[test]
    fn created_names_recipient_content_and_origin() {
        let mut n = notification(NotificationState::Pending);
        n.user_id = None;
        n.device_ids = Some(vec![1, 2, 3]);
        n.template = None;
        n.title = Some("Your card".into());
        n.priority = Priority::Bulk;
        n.ttl_seconds = 0;
        n.campaign_name = Some("Black Friday".into());
        n.idempotency_key = None;
        assert_eq!(
            created_detail(&n),
            "for 3 devices in app bank · “Your card” · bulk priority · now or never (one try) · campaign Black Friday"
        );
    }
}

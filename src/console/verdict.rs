//! The notification page's one-line verdict: what happened to a
//! notification and why, in the words a support agent reads out to a
//! customer ("Delivered to the iOS device at 10:42:03; the Android
//! device's token was dead (FCM UNREGISTERED) and has been removed.").
//!
//! A pure function of the support view ([`NotificationStatus`]), the
//! support team's time zone and the clock, so every combination of states
//! is unit-tested without a database. The providers' own answers (APNs
//! reasons, FCM codes, HTTP statuses) are quoted as they came: they are
//! what a provider's documentation and an engineer will be asked about.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::model::{AttemptOutcome, DeliveryState, NotificationState, Platform};
use crate::store::status::{AttemptStatus, DeliveryStatus, DeviceReceipt, NotificationStatus};

/// At most this many devices are named one by one; a longer verdict stops
/// being a line (the timeline below it has every device).
const NAMED: usize = 3;

/// One line in plain words saying what happened to `n` and why.
pub fn verdict(n: &NotificationStatus, tz: Tz, now: DateTime<Utc>) -> String {
    let t = |at: DateTime<Utc>| clock(at, tz, now);
    let line = match n.state {
        NotificationState::Pending if n.send_at > now => format!(
            "Scheduled for {}; nothing sent yet",
            clock_with_zone(n.send_at, tz, now)
        ),
        NotificationState::Pending => format!(
            "Due since {}, waiting to be fanned out to the devices; nothing sent yet",
            t(n.send_at)
        ),
        NotificationState::Cancelled => {
            let when = n
                .cancelled_at
                .map(|at| format!(" at {}", t(at)))
                .unwrap_or_default();
            // The API's cancellation says nothing a support agent needs;
            // another reason (a cancelled campaign) does.
            match n.state_reason.as_deref() {
                Some(why) if why != "cancelled through the API" => {
                    format!("Cancelled{when} before it was sent: {why}")
                }
                _ => format!("Cancelled{when} before it was sent"),
            }
        }
        NotificationState::NoDevices => match (&n.user_id, &n.device_ids) {
            (Some(user), _) => format!(
                "Not sent: user {user} has no active devices in app {}",
                n.app
            ),
            (None, Some(ids)) => format!(
                "Not sent: none of the {} devices it was addressed to is active in app {}",
                ids.len(),
                n.app
            ),
            (None, None) => format!("Not sent: no active devices in app {}", n.app),
        },
        NotificationState::Failed => match n.state_reason.as_deref() {
            Some(why) => format!("Not sent: {why}"),
            None => "Not sent".to_owned(),
        },
        NotificationState::Expired => format!(
            "Expired at {} before it could be sent; nothing was sent",
            t(n.expires_at)
        ),
        NotificationState::Dispatched => dispatched(n, tz, now),
    };
    sentence(&line)
}

/// A fanned-out notification: its devices' outcomes, delivered ones first,
/// then what the apps on the devices reported.
fn dispatched(n: &NotificationStatus, tz: Tz, now: DateTime<Utc>) -> String {
    let t = |at: DateTime<Utc>| clock(at, tz, now);
    let all = &n.deliveries;
    if all.is_empty() {
        return match n.fanned_out_at {
            Some(at) => format!(
                "Fanned out at {}, but its deliveries are no longer recorded",
                t(at)
            ),
            None => "Fanned out, but its deliveries are no longer recorded".to_owned(),
        };
    }
    let single = all.len() == 1;
    let (delivered, others): (Vec<&DeliveryStatus>, Vec<&DeliveryStatus>) = all
        .iter()
        .partition(|d| d.state == DeliveryState::Delivered);
    let mut parts = Vec::new();
    if !delivered.is_empty() {
        let named = if others.is_empty() { NAMED } else { 2 };
        if delivered.len() <= named {
            let each: Vec<String> = delivered
                .iter()
                .map(|d| match accepted_at(d) {
                    Some(at) => format!("{} at {}", device_name(d, all), t(at)),
                    None => device_name(d, all),
                })
                .collect();
            parts.push(format!("delivered to {}", join_and(&each)));
        } else if others.is_empty() {
            let last = delivered.iter().filter_map(|d| accepted_at(d)).max();
            parts.push(match last {
                Some(at) => format!("delivered to all {} devices by {}", all.len(), t(at)),
                None => format!("delivered to all {} devices", all.len()),
            });
        } else {
            parts.push(format!(
                "sent to {} of {} devices",
                delivered.len(),
                all.len()
            ));
        }
    }
    for d in others.iter().take(NAMED) {
        parts.push(clause(n, d, single, tz, now));
    }
    if others.len() > NAMED {
        parts.push(format!(
            "{} more devices not reached (see the timeline)",
            others.len() - NAMED
        ));
    }
    let cancelled_any = all.iter().any(|d| d.state == DeliveryState::Cancelled);
    if let (Some(at), false) = (n.cancelled_at, cancelled_any) {
        parts.push(format!("cancelled at {}, after it had been sent", t(at)));
    }
    let reported: Vec<String> = all
        .iter()
        .filter_map(|d| {
            furthest(&d.receipts).map(|r| {
                format!(
                    "{} on {} at {}",
                    r.event,
                    device_name(d, all),
                    t(r.occurred_at)
                )
            })
        })
        .collect();
    parts.extend(reported.iter().take(NAMED).cloned());
    if reported.len() > NAMED {
        parts.push(format!(
            "{} more devices reported receiving it",
            reported.len() - NAMED
        ));
    }
    parts.join("; ")
}

/// What became of one delivery that was not delivered. `single`: the
/// notification's only delivery, so the device goes without saying where
/// the sentence reads better without it.
fn clause(
    n: &NotificationStatus,
    d: &DeliveryStatus,
    single: bool,
    tz: Tz,
    now: DateTime<Utc>,
) -> String {
    let t = |at: DateTime<Utc>| clock(at, tz, now);
    let name = device_name(d, &n.deliveries);
    let last = d.history.last();
    let tries = d.history.len();
    match d.state {
        DeliveryState::Delivered => match accepted_at(d) {
            Some(at) => format!("delivered to {name} at {}", t(at)),
            None => format!("delivered to {name}"),
        },
        DeliveryState::TokenDead => {
            let answer = last.map(|a| format!(" ({})", short(a))).unwrap_or_default();
            let head = if single { "not delivered: " } else { "" };
            format!("{head}{name}'s token was dead{answer} and has been removed")
        }
        DeliveryState::Failed => match last {
            Some(a) if single && tries > 1 => format!("failed{}: {}", after(tries), why(a)),
            Some(a) if single => format!("not delivered: {}", why(a)),
            Some(a) => format!("sending to {name} failed{}: {}", after(tries), why(a)),
            None => {
                let error = d.last_error.as_deref().map(strip_not_sent);
                match (single, error) {
                    (true, Some(e)) => format!("not sent: {e}"),
                    (false, Some(e)) => format!("not sent to {name}: {e}"),
                    (_, None) => format!("not sent to {name}"),
                }
            }
        },
        DeliveryState::Expired => match last {
            Some(a) if single => format!("expired{}: {}", after(tries), why(a)),
            Some(a) => format!("expired before reaching {name}{}: {}", after(tries), why(a)),
            None if single => format!("expired at {} before it could be sent", t(n.expires_at)),
            None => format!(
                "expired at {} before it could be sent to {name}",
                t(n.expires_at)
            ),
        },
        DeliveryState::Pending => match (d.next_attempt_at, last) {
            (Some(at), Some(a)) => format!(
                "waiting to retry {name} at {} (attempt {} failed: {})",
                t(at),
                a.attempt,
                short(a)
            ),
            (Some(at), None) => match d.last_error.as_deref() {
                Some(e) => format!("waiting to send to {name} at {} ({e})", t(at)),
                None => format!("waiting to send to {name} at {}", t(at)),
            },
            (None, _) => format!("waiting to send to {name}"),
        },
        DeliveryState::Sending => match last {
            Some(a) => format!(
                "being sent to {name} now (attempt {} failed: {})",
                a.attempt,
                short(a)
            ),
            None => format!("being sent to {name} now"),
        },
        DeliveryState::Cancelled => {
            let when = d
                .cancelled_at
                .or(n.cancelled_at)
                .map(|at| format!(" at {}", t(at)))
                .unwrap_or_default();
            match last {
                Some(a) => format!(
                    "cancelled{when} before a retry to {name} (attempt {} failed: {})",
                    a.attempt,
                    short(a)
                ),
                None => format!("cancelled{when} before it was sent to {name}"),
            }
        }
    }
}

/// " after 3 attempts", or nothing after one.
fn after(tries: usize) -> String {
    if tries > 1 {
        format!(" after {tries} attempts")
    } else {
        String::new()
    }
}

/// The executor's "not sent: …" reasons, without repeating "not sent".
fn strip_not_sent(e: &str) -> &str {
    e.strip_prefix("not sent: ").unwrap_or(e)
}

/// A device as support names it: by platform (all pushrelay knows of the
/// hardware), with the end of its token when the notification went to
/// several devices of that platform.
pub fn device_name(d: &DeliveryStatus, all: &[DeliveryStatus]) -> String {
    let platform = platform_name(d.platform);
    let alike = all.iter().filter(|o| o.platform == d.platform).count();
    if alike <= 1 {
        return format!("the {platform} device");
    }
    match d.token.as_deref().and_then(token_tail) {
        Some(tail) => format!("the {platform} device …{tail}"),
        None => format!("the {platform} device {}", d.device_id),
    }
}

/// A device in a table or a timeline row: "iOS …c5d6".
pub fn device_label(d: &DeliveryStatus) -> String {
    let platform = platform_name(d.platform);
    match (d.token.as_deref(), d.token.as_deref().and_then(token_tail)) {
        (_, Some(tail)) => format!("{platform} …{tail}"),
        (Some(_), None) => format!("{platform} device {}", d.device_id),
        (None, None) => format!("{platform} device {} (deleted)", d.device_id),
    }
}

pub fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::Ios => "iOS",
        Platform::Android => "Android",
    }
}

/// The end of a masked token ("a1b2c3…8f90" → "8f90"); a short token's
/// mask keeps no end.
fn token_tail(masked: &str) -> Option<&str> {
    masked
        .rsplit_once('…')
        .map(|(_, tail)| tail)
        .filter(|tail| !tail.is_empty())
}

/// A provider as its documentation names it.
pub fn provider_name(p: &str) -> String {
    match p {
        "apns" => "APNs".to_owned(),
        "fcm" => "FCM".to_owned(),
        "sns" => "Amazon SNS".to_owned(),
        // A rescued attempt: the process that made it is gone.
        "(unknown)" | "" | "(none)" => "the provider".to_owned(),
        other => other.to_owned(),
    }
}

/// The provider's answer in its own vocabulary: the APNs reason or FCM
/// code ("UNREGISTERED: Requested entity was not found." → "UNREGISTERED"),
/// or the whole reason when it is a sentence (a timeout, a local refusal).
pub fn reason_code(reason: &str) -> String {
    let reason = reason.trim();
    let head = reason.split(':').next().unwrap_or("").trim();
    let text = if !head.is_empty() && !head.contains(char::is_whitespace) {
        head
    } else {
        reason
    };
    const MAX: usize = 120;
    if text.chars().count() > MAX {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// "FCM UNAVAILABLE": who answered what.
fn short(a: &AttemptStatus) -> String {
    let provider = provider_name(&a.provider);
    match (&a.reason, a.status_code) {
        (Some(r), _) => format!("{provider} {}", reason_code(r)),
        (None, Some(s)) => format!("{provider} HTTP {s}"),
        (None, None) => format!("{provider} {}", a.outcome),
    }
}

/// "503 ServiceUnavailable": the status and the reason's code.
fn answer(a: &AttemptStatus) -> String {
    let code = a.reason.as_deref().map(reason_code);
    match (a.status_code, code) {
        (Some(s), Some(c)) => format!("{s} {c}"),
        (Some(s), None) => format!("HTTP {s}"),
        (None, Some(c)) => c,
        (None, None) => a.outcome.to_string(),
    }
}

/// Why an attempt did not deliver, as a clause: "APNs was unavailable
/// (503 ServiceUnavailable)".
fn why(a: &AttemptStatus) -> String {
    let p = provider_name(&a.provider);
    let code = a.reason.as_deref().map(reason_code).unwrap_or_default();
    match a.outcome {
        AttemptOutcome::Delivered => format!("{p} accepted it"),
        AttemptOutcome::Transient => {
            let throttled = a.status_code == Some(429)
                || matches!(
                    code.as_str(),
                    "TooManyRequests" | "QUOTA_EXCEEDED" | "RESOURCE_EXHAUSTED" | "Throttling"
                );
            let down = a.status_code.is_some_and(|s| s >= 500)
                || matches!(
                    code.as_str(),
                    "ServiceUnavailable"
                        | "UNAVAILABLE"
                        | "InternalServerError"
                        | "INTERNAL"
                        | "Shutdown"
                );
            match a.status_code {
                _ if throttled => format!("{p} was throttling sends ({})", answer(a)),
                _ if down => format!("{p} was unavailable ({})", answer(a)),
                Some(_) => format!("{p} answered {}", answer(a)),
                None if code.starts_with("no answer") => format!("{p} did not answer ({code})"),
                None => format!("{p} could not be reached ({code})"),
            }
        }
        AttemptOutcome::Permanent if a.status_code.is_none() => {
            format!("it could not be sent ({code})")
        }
        AttemptOutcome::Permanent => format!("{p} refused the message ({})", answer(a)),
        AttemptOutcome::TokenDead => format!("{p} said the token is dead ({})", answer(a)),
        AttemptOutcome::ConfigError => {
            format!("{p} rejected this app's provider setup ({})", answer(a))
        }
        AttemptOutcome::Lost => {
            "the process sending it stopped reporting (it may or may not have been sent)".to_owned()
        }
    }
}

/// When the provider accepted the delivery: the end of the accepted try.
pub fn accepted_at(d: &DeliveryStatus) -> Option<DateTime<Utc>> {
    d.history
        .iter()
        .rev()
        .find(|a| a.outcome == AttemptOutcome::Delivered)
        .map(|a| a.started_at + chrono::Duration::milliseconds(i64::from(a.latency_ms)))
}

/// The furthest the app got: opened, else displayed, else received.
fn furthest(receipts: &[DeviceReceipt]) -> Option<&DeviceReceipt> {
    let rank = |e: &str| match e {
        "opened" => 3,
        "displayed" => 2,
        "received" => 1,
        _ => 0,
    };
    receipts
        .iter()
        .filter(|r| rank(&r.event) > 0)
        .max_by_key(|r| (rank(&r.event), r.occurred_at))
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A capital first letter and one full stop (a provider's reason may end
/// with its own).
fn sentence(line: &str) -> String {
    let line = line.trim_end_matches(['.', ' ']);
    let mut chars = line.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// "10:42:03" in the support team's zone, with the date when it is not
/// today there.
pub fn clock(at: DateTime<Utc>, tz: Tz, now: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz);
    if local.date_naive() == now.with_timezone(&tz).date_naive() {
        local.format("%H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// [`clock`] with the zone's abbreviation ("18:00:00 CET"), for a time
/// not yet come that someone may act on.
fn clock_with_zone(at: DateTime<Utc>, tz: Tz, now: DateTime<Utc>) -> String {
    format!(
        "{} {}",
        clock(at, tz, now),
        at.with_timezone(&tz).format("%Z")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::fixtures::*;

    fn accepted(n: i32, provider: &str, started_at: DateTime<Utc>) -> AttemptStatus {
        attempt(
            n,
            provider,
            started_at,
            AttemptOutcome::Delivered,
            Some(200),
            None,
            None,
        )
    }

    fn unavailable(
        n: i32,
        started_at: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
    ) -> AttemptStatus {
        attempt(
            n,
            "apns",
            started_at,
            AttemptOutcome::Transient,
            Some(503),
            Some("ServiceUnavailable"),
            retry_at,
        )
    }

    fn receipt(event: &str, occurred_at: DateTime<Utc>) -> DeviceReceipt {
        DeviceReceipt {
            delivery_id: 0,
            event: event.into(),
            occurred_at,
            reported_at: occurred_at,
        }
    }

    fn v(n: &NotificationStatus) -> String {
        verdict(n, Tz::UTC, now())
    }

    #[test]
    fn delivered_to_one_device() {
        let mut n = notification(NotificationState::Dispatched);
        let mut d = ios(1, DeliveryState::Delivered);
        d.history.push(accepted(1, "apns", at(10, 42, 2)));
        n.deliveries.push(d);
        // Accepted at the end of the try: 10:42:02 + 182 ms.
        assert_eq!(v(&n), "Delivered to the iOS device at 10:42:02.");
    }

    #[test]
    fn sns_answers_in_its_own_words() {
        let mut n = notification(NotificationState::Dispatched);
        let mut a = android(2, DeliveryState::TokenDead);
        a.history.push(attempt(
            1,
            "sns",
            at(10, 42, 3),
            AttemptOutcome::TokenDead,
            Some(400),
            Some("EndpointDisabled: Endpoint is disabled"),
            None,
        ));
        n.deliveries = vec![a];
        assert_eq!(
            v(&n),
            "Not delivered: the Android device's token was dead (Amazon SNS EndpointDisabled) \
             and has been removed."
        );
    }

    #[test]
    fn delivered_to_one_token_dead_on_another() {
        let mut n = notification(NotificationState::Dispatched);
        let mut i = ios(1, DeliveryState::Delivered);
        i.history.push(accepted(1, "apns", at(10, 42, 3)));
        let mut a = android(2, DeliveryState::TokenDead);
        a.history.push(attempt(
            1,
            "fcm",
            at(10, 42, 3),
            AttemptOutcome::TokenDead,
            Some(404),
            Some("UNREGISTERED: Requested entity was not found."),
            None,
        ));
        n.deliveries = vec![i, a];
        assert_eq!(
            v(&n),
            "Delivered to the iOS device at 10:42:03; the Android device's token was dead \
             (FCM UNREGISTERED) and has been removed."
        );
    }

    #[test]
    fn token_dead_on_the_only_device() {
        let mut n = notification(NotificationState::Dispatched);
        let mut d = ios(1, DeliveryState::TokenDead);
        d.history.push(attempt(
            1,
            "apns",
            at(10, 42, 3),
            AttemptOutcome::TokenDead,
            Some(410),
            Some("Unregistered"),
            None,
        ));
        n.deliveries.push(d);
        assert_eq!(
            v(&n),
            "Not delivered: the iOS device's token was dead (APNs Unregistered) and has been removed."
        );
    }

    #[test]
    fn expired_after_retries() {
        let mut n = notification(NotificationState::Dispatched);
        let mut d = ios(1, DeliveryState::Expired);
        d.history = vec![
            unavailable(1, at(10, 41, 2), Some(at(10, 41, 30))),
            unavailable(2, at(10, 41, 30), Some(at(10, 43, 0))),
            unavailable(3, at(10, 43, 0), None),
        ];
        d.last_error = Some("expired at …: the next retry would have been too late".into());
        n.deliveries.push(d);
        assert_eq!(
            v(&n),
            "Expired after 3 attempts: APNs was unavailable (503 ServiceUnavailable)."
        );
    }

    #[test]
    fn expired_before_it_was_tried() {
        let mut n = notification(NotificationState::Dispatched);
        let mut d = android(1, DeliveryState::Expired);
        d.last_error =
            Some("expired at 2026-11-26 10:46:00.000 UTC before it could be sent".into());
        n.deliveries.push(d);
        assert_eq!(v(&n), "Expired at 10:46:00 before it could be sent.");
        // Beside a delivered device, the expired one is named.
        let mut i = ios(2, DeliveryState::Delivered);
        i.history.push(accepted(1, "apns", at(10, 41, 2)));
        n.deliveries.insert(0, i);
        assert_eq!(
            v(&n),
            "Delivered to the iOS device at 10:41:02; expired at 10:46:00 before it could be \
             sent to the Android device."
        );
    }

    #[test]
    fn waiting_for_a_retry() {
        let mut n = notification(NotificationState::Dispatched);
        let mut d = android(1, DeliveryState::Pending);
        d.history = vec![
            attempt(
                1,
                "fcm",
                at(10, 42, 0),
                AttemptOutcome::Transient,
                Some(503),
                Some("UNAVAILABLE"),
                Some(at(10, 42, 20)),
            ),
            attempt(
                2,
                "fcm",
                at(10, 42, 20),
                AttemptOutcome::Transient,
                Some(503),
                Some("UNAVAILABLE: The service is overloaded."),
                Some(at(10, 43, 10)),
            ),
        ];
        d.next_attempt_at = Some(at(10, 43, 10));
        n.deliveries.push(d);
        assert_eq!(
            v(&n),
            "Waiting to retry the Android device at 10:43:10 (attempt 2 failed: FCM UNAVAILABLE)."
        );
    }

    #[test]
    fn held_before_any_try_and_being_sent() {
        let mut n = notification(NotificationState::Dispatched);
        let mut held = ios(1, DeliveryState::Pending);
        held.next_attempt_at = Some(at(10, 51, 0));
        held.last_error = Some("sends paused: APNs rejected this app's key".into());
        n.deliveries.push(held);
        assert_eq!(
            v(&n),
            "Waiting to send to the iOS device at 10:51:00 (sends paused: APNs rejected this app's key)."
        );
        n.deliveries[0].state = DeliveryState::Sending;
        n.deliveries[0].next_attempt_at = None;
        assert_eq!(v(&n), "Being sent to the iOS device now.");
        n.deliveries[0]
            .history
            .push(unavailable(1, at(10, 45, 0), Some(at(10, 46, 0))));
        assert_eq!(
            v(&n),
            "Being sent to the iOS device now (attempt 1 failed: APNs ServiceUnavailable)."
        );
        n.deliveries[0].state = DeliveryState::Pending;
        n.deliveries[0].history.clear();
        n.deliveries[0].last_error = None;
        n.deliveries[0].next_attempt_at = None;
        assert_eq!(v(&n), "Waiting to send to the iOS device.");
    }

    #[test]
    fn refused_and_gave_up() {
        let mut n = notification(NotificationState::Dispatched);
        let mut d = ios(1, DeliveryState::Failed);
        d.history.push(attempt(
            1,
            "apns",
            at(10, 42, 0),
            AttemptOutcome::Permanent,
            Some(400),
            Some("BadTopic"),
            None,
        ));
        n.deliveries.push(d);
        assert_eq!(
            v(&n),
            "Not delivered: APNs refused the message (400 BadTopic)."
        );
        let mut d = android(2, DeliveryState::Failed);
        d.history = vec![
            attempt(
                1,
                "fcm",
                at(10, 42, 0),
                AttemptOutcome::Transient,
                Some(429),
                Some("QUOTA_EXCEEDED"),
                Some(at(10, 42, 5)),
            ),
            attempt(
                2,
                "fcm",
                at(10, 42, 5),
                AttemptOutcome::Transient,
                None,
                Some("no answer within 2000 ms"),
                None,
            ),
        ];
        n.deliveries.push(d);
        assert_eq!(
            v(&n),
            "Sending to the iOS device failed: APNs refused the message (400 BadTopic); sending \
             to the Android device failed after 2 attempts: FCM did not answer (no answer \
             within 2000 ms)."
        );
        n.deliveries.remove(0);
        assert_eq!(
            v(&n),
            "Failed after 2 attempts: FCM did not answer (no answer within 2000 ms)."
        );
    }

    #[test]
    fn failures_in_words() {
        let a = |outcome, status, reason: &str| {
            why(&attempt(
                1,
                "fcm",
                at(10, 0, 0),
                outcome,
                status,
                Some(reason),
                None,
            ))
        };
        assert_eq!(
            a(
                AttemptOutcome::Transient,
                Some(429),
                "QUOTA_EXCEEDED: quota"
            ),
            "FCM was throttling sends (429 QUOTA_EXCEEDED)"
        );
        assert_eq!(
            a(AttemptOutcome::Transient, None, "connection refused"),
            "FCM could not be reached (connection refused)"
        );
        assert_eq!(
            a(AttemptOutcome::Transient, Some(409), "odd"),
            "FCM answered 409 odd"
        );
        assert_eq!(
            a(
                AttemptOutcome::Permanent,
                None,
                "message is too big: 5000 bytes"
            ),
            "it could not be sent (message is too big: 5000 bytes)"
        );
        assert_eq!(
            a(
                AttemptOutcome::ConfigError,
                Some(401),
                "THIRD_PARTY_AUTH_ERROR"
            ),
            "FCM rejected this app's provider setup (401 THIRD_PARTY_AUTH_ERROR)"
        );
        assert_eq!(
            a(AttemptOutcome::TokenDead, Some(404), "UNREGISTERED: gone"),
            "FCM said the token is dead (404 UNREGISTERED)"
        );
        assert!(a(AttemptOutcome::Lost, None, "x").contains("stopped reporting"));
        // A proxy's page is not quoted whole.
        let long = "<html>".repeat(100);
        assert!(reason_code(&long).chars().count() <= 121);
    }

    #[test]
    fn failed_without_a_try_quotes_the_reason() {
        let mut n = notification(NotificationState::Dispatched);
        let mut d = ios(1, DeliveryState::Failed);
        d.last_error = Some(
            "not sent: the device was invalidated at 2026-11-26 09:00:00 UTC (Unregistered)".into(),
        );
        n.deliveries.push(d);
        assert_eq!(
            v(&n),
            "Not sent: the device was invalidated at 2026-11-26 09:00:00 UTC (Unregistered)."
        );
        let mut i = ios(2, DeliveryState::Delivered);
        i.history.push(accepted(1, "apns", at(10, 41, 2)));
        n.deliveries.push(i);
        // Two iOS devices: each is told apart by the end of its token.
        n.deliveries[1].token = Some(crate::model::mask_token(IOS_TOKEN_2));
        assert_eq!(
            v(&n),
            "Delivered to the iOS device …0042 at 10:41:02; not sent to the iOS device …c5d6: \
             the device was invalidated at 2026-11-26 09:00:00 UTC (Unregistered)."
        );
    }

    #[test]
    fn many_devices_are_counted_not_listed() {
        let mut n = notification(NotificationState::Dispatched);
        for i in 0..4 {
            let token = format!("{IOS_TOKEN}{i:04}");
            let mut d = delivery(i, Platform::Ios, &token, DeliveryState::Delivered);
            d.history
                .push(accepted(1, "apns", at(10, 41, 2 + i as u32)));
            n.deliveries.push(d);
        }
        assert_eq!(v(&n), "Delivered to all 4 devices by 10:41:05.");
        let mut a = android(9, DeliveryState::Expired);
        a.history.push(attempt(
            1,
            "fcm",
            at(10, 42, 0),
            AttemptOutcome::Transient,
            Some(500),
            Some("INTERNAL"),
            None,
        ));
        n.deliveries.push(a);
        assert_eq!(
            v(&n),
            "Sent to 4 of 5 devices; expired before reaching the Android device: FCM was \
             unavailable (500 INTERNAL)."
        );
        for i in 10..14 {
            n.deliveries.push(android(i, DeliveryState::Cancelled));
        }
        let line = v(&n);
        assert!(
            line.ends_with("; 2 more devices not reached (see the timeline)."),
            "{line}"
        );
    }

    #[test]
    fn three_delivered_are_named() {
        let mut n = notification(NotificationState::Dispatched);
        let mut a = ios(1, DeliveryState::Delivered);
        a.history.push(accepted(1, "apns", at(10, 41, 2)));
        let mut b = android(2, DeliveryState::Delivered);
        b.history.push(accepted(1, "fcm", at(10, 41, 3)));
        n.deliveries = vec![a, b];
        assert_eq!(
            v(&n),
            "Delivered to the iOS device at 10:41:02 and the Android device at 10:41:03."
        );
    }

    #[test]
    fn receipts_follow_the_outcome() {
        let mut n = notification(NotificationState::Dispatched);
        let mut d = ios(1, DeliveryState::Delivered);
        d.history.push(accepted(1, "apns", at(10, 42, 2)));
        d.receipts = vec![
            receipt("received", at(10, 42, 4)),
            receipt("opened", at(10, 45, 12)),
            receipt("displayed", at(10, 42, 5)),
        ];
        n.deliveries.push(d);
        assert_eq!(
            v(&n),
            "Delivered to the iOS device at 10:42:02; opened on the iOS device at 10:45:12."
        );
        n.deliveries[0].receipts.truncate(1);
        assert_eq!(
            v(&n),
            "Delivered to the iOS device at 10:42:02; received on the iOS device at 10:42:04."
        );
    }

    #[test]
    fn scheduled_in_the_teams_zone() {
        let mut n = notification(NotificationState::Pending);
        n.send_at = at(17, 0, 0);
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            verdict(&n, paris, now()),
            "Scheduled for 18:00:00 CET; nothing sent yet."
        );
        // Another day shows its date.
        n.send_at = at(17, 0, 0) + chrono::Duration::days(1);
        assert_eq!(
            verdict(&n, paris, now()),
            "Scheduled for 2026-11-27 18:00:00 CET; nothing sent yet."
        );
        n.send_at = at(10, 49, 0);
        assert_eq!(
            v(&n),
            "Due since 10:49:00, waiting to be fanned out to the devices; nothing sent yet."
        );
    }

    #[test]
    fn cancelled_before_it_was_sent() {
        let mut n = notification(NotificationState::Cancelled);
        n.fanned_out_at = None;
        n.cancelled_at = Some(at(10, 41, 0));
        n.state_reason = Some("cancelled through the API".into());
        assert_eq!(v(&n), "Cancelled at 10:41:00 before it was sent.");
        n.state_reason = Some("its campaign was cancelled".into());
        assert_eq!(
            v(&n),
            "Cancelled at 10:41:00 before it was sent: its campaign was cancelled."
        );
        n.cancelled_at = None;
        assert_eq!(
            v(&n),
            "Cancelled before it was sent: its campaign was cancelled."
        );
    }

    #[test]
    fn cancelled_after_fan_out() {
        let mut n = notification(NotificationState::Dispatched);
        n.cancelled_at = Some(at(10, 42, 30));
        let mut d = ios(1, DeliveryState::Cancelled);
        d.cancelled_at = Some(at(10, 42, 30));
        n.deliveries.push(d);
        assert_eq!(
            v(&n),
            "Cancelled at 10:42:30 before it was sent to the iOS device."
        );
        n.deliveries[0]
            .history
            .push(unavailable(1, at(10, 42, 0), None));
        assert_eq!(
            v(&n),
            "Cancelled at 10:42:30 before a retry to the iOS device (attempt 1 failed: APNs ServiceUnavailable)."
        );
        // Cancelled too late: everything had been sent.
        n.deliveries[0].state = DeliveryState::Delivered;
        n.deliveries[0].history = vec![accepted(1, "apns", at(10, 42, 0))];
        assert_eq!(
            v(&n),
            "Delivered to the iOS device at 10:42:00; cancelled at 10:42:30, after it had been sent."
        );
    }

    #[test]
    fn not_sent_at_fan_out() {
        let n = notification(NotificationState::NoDevices);
        assert_eq!(
            v(&n),
            "Not sent: user bob has no active devices in app bank."
        );
        let mut n = notification(NotificationState::NoDevices);
        n.user_id = None;
        n.device_ids = Some(vec![1, 2]);
        assert_eq!(
            v(&n),
            "Not sent: none of the 2 devices it was addressed to is active in app bank."
        );
        let mut n = notification(NotificationState::Failed);
        n.state_reason = Some("unknown app 'bnak': it is not configured in this pushrelay; add [apps.bnak] to config.toml".into());
        assert_eq!(
            v(&n),
            "Not sent: unknown app 'bnak': it is not configured in this pushrelay; add [apps.bnak] to config.toml."
        );
        let n = notification(NotificationState::Failed);
        assert_eq!(v(&n), "Not sent.");
        let n = notification(NotificationState::Expired);
        assert_eq!(
            v(&n),
            "Expired at 10:46:00 before it could be sent; nothing was sent."
        );
    }

    #[test]
    fn fanned_out_with_no_deliveries_left() {
        let n = notification(NotificationState::Dispatched);
        assert_eq!(
            v(&n),
            "Fanned out at 10:41:01, but its deliveries are no longer recorded."
        );
    }

    #[test]
    fn every_state_combination_makes_one_sentence() {
        for ns in NotificationState::ALL {
            for ds in DeliveryState::ALL {
                for with_attempt in [false, true] {
                    let mut n = notification(*ns);
                    if *ns == NotificationState::Dispatched {
                        let mut d = android(1, *ds);
                        if with_attempt {
                            d.history.push(unavailable(1, at(10, 42, 0), None));
                        }
                        n.deliveries = vec![d, ios(2, *ds)];
                    }
                    let line = v(&n);
                    assert!(line.ends_with('.') && !line.ends_with(".."), "{line}");
                    assert!(line.chars().next().unwrap().is_uppercase(), "{line}");
                    assert!(!line.contains('\n'), "{line}");
                }
            }
        }
    }

    #[test]
    fn devices_are_named_by_platform_and_token_end() {
        let i = ios(1, DeliveryState::Delivered);
        let mut deleted = ios(2, DeliveryState::Failed);
        deleted.token = None;
        let all = vec![i.clone(), deleted.clone()];
        assert_eq!(device_name(&i, &all), "the iOS device …c5d6");
        assert_eq!(device_name(&deleted, &all), "the iOS device 20");
        assert_eq!(device_name(&i, &all[..1]), "the iOS device");
        assert_eq!(device_label(&i), "iOS …c5d6");
        assert_eq!(device_label(&deleted), "iOS device 20 (deleted)");
        let short = delivery(3, Platform::Android, "abcdefgh", DeliveryState::Sending);
        assert_eq!(device_label(&short), "Android device 30");
    }
}

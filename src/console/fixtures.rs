//! Support views built by hand for the console's unit tests: the verdict
//! and the timeline are pure functions of a [`NotificationStatus`], so
//! their tests need only these (the integration tests read real ones).

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::model::{AttemptOutcome, DeliveryState, NotificationState, Platform, Priority};
use crate::store::status::{AttemptStatus, DeliveryStatus, NotificationStatus};

pub fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, m, s).unwrap()
}

/// 10:50 UTC on the day of the notifications.
pub fn now() -> DateTime<Utc> {
    at(10, 50, 0)
}

pub fn notification(state: NotificationState) -> NotificationStatus {
    NotificationStatus {
        id: Uuid::nil(),
        app: "bank".into(),
        user_id: Some("bob".into()),
        device_ids: None,
        template: Some("otp".into()),
        title: None,
        priority: Priority::Urgent,
        state,
        state_reason: None,
        idempotency_key: None,
        created_at: at(10, 41, 0),
        send_at: at(10, 41, 0),
        expires_at: at(10, 46, 0),
        ttl_seconds: 300,
        fanned_out_at: (state != NotificationState::Pending).then(|| at(10, 41, 1)),
        cancelled_at: None,
        campaign_id: None,
        campaign_name: None,
        received: 0,
        displayed: 0,
        opened: 0,
        deliveries: Vec::new(),
    }
}

pub fn delivery(id: i64, platform: Platform, token: &str, state: DeliveryState) -> DeliveryStatus {
    DeliveryStatus {
        id,
        notification_id: Uuid::nil(),
        device_id: id * 10,
        platform,
        token: Some(crate::model::mask_token(token)),
        state,
        attempts: 0,
        next_attempt_at: None,
        provider_message_id: None,
        last_error: None,
        cancelled_at: None,
        history: Vec::new(),
        receipts: Vec::new(),
    }
}

pub const IOS_TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7ec5d6";
pub const IOS_TOKEN_2: &str = "ffb2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e0042";
pub const FCM_TOKEN: &str = "fcm:APA91bH-some-registration-token-9z8y";

pub fn ios(id: i64, state: DeliveryState) -> DeliveryStatus {
    delivery(id, Platform::Ios, IOS_TOKEN, state)
}

pub fn android(id: i64, state: DeliveryState) -> DeliveryStatus {
    delivery(id, Platform::Android, FCM_TOKEN, state)
}

pub fn attempt(
    n: i32,
    provider: &str,
    started_at: DateTime<Utc>,
    outcome: AttemptOutcome,
    status_code: Option<i32>,
    reason: Option<&str>,
    retry_at: Option<DateTime<Utc>>,
) -> AttemptStatus {
    AttemptStatus {
        delivery_id: 0,
        attempt: n,
        worker: "w1".into(),
        provider: provider.into(),
        started_at,
        latency_ms: 182,
        outcome,
        status_code,
        reason: reason.map(str::to_owned),
        retry_at,
    }
}

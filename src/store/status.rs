//! Support's view: what happened to a notification, device by device,
//! attempt by attempt, and what the app on each device reported back
//! (received, displayed, opened). Tokens are masked. The HTTP API answers
//! with the same view, so CLI and API never disagree.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::model::{
    mask_token, AttemptOutcome, DeliveryState, NotificationState, Platform, Priority,
};

const NOTIFICATION: &str = include_str!("status/notification.sql");
const DELIVERIES: &str = include_str!("status/deliveries.sql");
const RECEIPTS: &str = include_str!("status/receipts.sql");
const DEVICE_RECEIPTS: &str = include_str!("status/device_receipts.sql");
const OPEN_WORK: &str = include_str!("status/open_work.sql");
const DELIVERIES_BY_STATE: &str = include_str!("status/deliveries_by_state.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("status/deliveries_by_state", DELIVERIES_BY_STATE),
    ("status/notification", NOTIFICATION),
    ("status/deliveries", DELIVERIES),
    ("status/receipts", RECEIPTS),
    ("status/device_receipts", DEVICE_RECEIPTS),
    ("status/open_work", OPEN_WORK),
];

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no notification with id {0}")]
    NotFound(Uuid),
    #[error("{open} notifications/deliveries of app {app:?} still in flight after {secs} s; run `pushrelay run` to finish them")]
    StillOpen { app: String, open: i64, secs: u64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NotificationStatus {
    pub id: Uuid,
    pub app: String,
    pub user_id: Option<String>,
    pub device_ids: Option<Vec<i64>>,
    pub template: Option<String>,
    pub title: Option<String>,
    pub priority: Priority,
    pub state: NotificationState,
    pub state_reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub send_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// 0: "now or never", one try at once (`expires_at` is then `send_at`).
    pub ttl_seconds: i32,
    pub fanned_out_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The campaign that sent it, if one did.
    pub campaign_id: Option<Uuid>,
    pub campaign_name: Option<String>,
    /// Deliveries whose device reported the notification received,
    /// displayed, opened (the device receipts), counted from the
    /// deliveries' own receipts below.
    #[sqlx(default)]
    pub received: i64,
    #[sqlx(default)]
    pub displayed: i64,
    #[sqlx(default)]
    pub opened: i64,
    #[sqlx(skip)]
    pub deliveries: Vec<DeliveryStatus>,
}

impl NotificationStatus {
    /// A notification just inserted, as reading it back would show it:
    /// pending, no deliveries yet. Spares the API a read after each insert.
    pub fn just_inserted(
        id: Uuid,
        n: &crate::store::notifications::NewNotification,
        created_at: DateTime<Utc>,
        send_at: DateTime<Utc>,
    ) -> NotificationStatus {
        let ttl_seconds = n.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        NotificationStatus {
            id,
            app: n.app.clone(),
            user_id: n.user_id.clone(),
            device_ids: n.device_ids.clone(),
            template: n.template.clone(),
            title: n.title.clone(),
            priority: n.priority.unwrap_or(Priority::Urgent),
            state: NotificationState::Pending,
            state_reason: None,
            idempotency_key: n.idempotency_key.clone(),
            created_at,
            send_at,
            expires_at: send_at + chrono::Duration::seconds(i64::from(ttl_seconds)),
            ttl_seconds,
            fanned_out_at: None,
            cancelled_at: None,
            campaign_id: None,
            campaign_name: None,
            received: 0,
            displayed: 0,
            opened: 0,
            deliveries: Vec::new(),
        }
    }
}

/// The table's default `ttl_seconds` (one day).
pub const DEFAULT_TTL_SECONDS: i32 = 86_400;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryStatus {
    pub id: i64,
    #[serde(skip)]
    pub notification_id: Uuid,
    pub device_id: i64,
    pub platform: Platform,
    /// Masked; `None` when the device no longer exists.
    pub token: Option<String>,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
    pub last_error: Option<String>,
    /// Set when its notification was cancelled; a try then in flight was
    /// not recalled, but is not retried.
    pub cancelled_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub history: Vec<AttemptStatus>,
    /// What the app on the device reported.
    #[sqlx(skip)]
    pub receipts: Vec<DeviceReceipt>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AttemptStatus {
    #[serde(skip)]
    pub delivery_id: i64,
    pub attempt: i32,
    pub worker: String,
    pub provider: String,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i32,
    pub outcome: AttemptOutcome,
    pub status_code: Option<i32>,
    pub reason: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
}

/// One event the app on the device reported for a delivery.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeviceReceipt {
    #[serde(skip)]
    pub delivery_id: i64,
    /// received | displayed | opened
    pub event: String,
    pub occurred_at: DateTime<Utc>,
    pub reported_at: DateTime<Utc>,
}

pub async fn load(pool: &PgPool, id: Uuid) -> Result<NotificationStatus, StatusError> {
    load_many(pool, &[id])
        .await?
        .pop()
        .ok_or(StatusError::NotFound(id))
}

/// The support view of several notifications in four statements whatever
/// their number, in the order of `ids`; missing ones are left out.
pub async fn load_many(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<Vec<NotificationStatus>, StatusError> {
    let mut found: Vec<NotificationStatus> = sqlx::query_as(NOTIFICATION)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    if found.is_empty() {
        return Ok(found);
    }
    let mut deliveries: Vec<DeliveryStatus> =
        sqlx::query_as(DELIVERIES).bind(ids).fetch_all(pool).await?;
    let delivery_ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
    let attempts: Vec<AttemptStatus> = sqlx::query_as(RECEIPTS)
        .bind(&delivery_ids)
        .fetch_all(pool)
        .await?;
    let reported: Vec<DeviceReceipt> = sqlx::query_as(DEVICE_RECEIPTS)
        .bind(&delivery_ids)
        .fetch_all(pool)
        .await?;
    let position: HashMap<i64, usize> = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id, i))
        .collect();
    for a in attempts {
        if let Some(&i) = position.get(&a.delivery_id) {
            deliveries[i].history.push(a);
        }
    }
    for r in reported {
        if let Some(&i) = position.get(&r.delivery_id) {
            deliveries[i].receipts.push(r);
        }
    }
    let order: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    found.sort_by_key(|n| order.get(&n.id).copied());
    let at: HashMap<Uuid, usize> = found.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    for mut d in deliveries {
        d.token = d.token.as_deref().map(mask_token);
        if let Some(&i) = at.get(&d.notification_id) {
            let n = &mut found[i];
            for r in &d.receipts {
                match r.event.as_str() {
                    "received" => n.received += 1,
                    "displayed" => n.displayed += 1,
                    "opened" => n.opened += 1,
                    _ => {}
                }
            }
            n.deliveries.push(d);
        }
    }
    Ok(found)
}

/// Notifications not yet fanned out plus deliveries not yet settled, for
/// one app: zero means everything enqueued so far has an outcome.
pub async fn open_work(pool: &PgPool, app: &str) -> Result<i64, StatusError> {
    Ok(sqlx::query_scalar(OPEN_WORK)
        .bind(app)
        .fetch_one(pool)
        .await?)
}

/// Waits until [`open_work`] is zero, for at most `within`.
pub async fn wait_until_settled(
    pool: &PgPool,
    app: &str,
    within: std::time::Duration,
) -> Result<(), StatusError> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let open = open_work(pool, app).await?;
        if open == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= until {
            return Err(StatusError::StillOpen {
                app: app.to_owned(),
                open,
                secs: within.as_secs(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// How many of an app's deliveries are in each state.
pub async fn deliveries_by_state(
    pool: &PgPool,
    app: &str,
) -> Result<Vec<(DeliveryState, i64)>, StatusError> {
    Ok(sqlx::query_as(DELIVERIES_BY_STATE)
        .bind(app)
        .fetch_all(pool)
        .await?)
}

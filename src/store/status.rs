//! Support's view: what happened to a notification, device by device,
//! attempt by attempt. Tokens are masked.

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
const OPEN_WORK: &str = include_str!("status/open_work.sql");
const DELIVERIES_BY_STATE: &str = include_str!("status/deliveries_by_state.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("status/deliveries_by_state", DELIVERIES_BY_STATE),
    ("status/notification", NOTIFICATION),
    ("status/deliveries", DELIVERIES),
    ("status/receipts", RECEIPTS),
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

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct NotificationStatus {
    pub id: Uuid,
    pub app: String,
    pub user_id: Option<String>,
    pub template: Option<String>,
    pub priority: Priority,
    pub state: NotificationState,
    pub state_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub send_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// 0: "now or never", one try at once (`expires_at` is then `send_at`).
    pub ttl_seconds: i32,
    pub fanned_out_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub deliveries: Vec<DeliveryStatus>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DeliveryStatus {
    pub id: i64,
    pub device_id: i64,
    pub platform: Platform,
    /// Masked; `None` when the device no longer exists.
    pub token: Option<String>,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
    pub last_error: Option<String>,
    #[sqlx(skip)]
    pub history: Vec<AttemptStatus>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
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

pub async fn load(pool: &PgPool, id: Uuid) -> Result<NotificationStatus, StatusError> {
    let mut n: NotificationStatus = sqlx::query_as(NOTIFICATION)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StatusError::NotFound(id))?;
    n.deliveries = sqlx::query_as(DELIVERIES).bind(id).fetch_all(pool).await?;
    for d in &mut n.deliveries {
        d.token = d.token.as_deref().map(mask_token);
    }
    let ids: Vec<i64> = n.deliveries.iter().map(|d| d.id).collect();
    let attempts: Vec<AttemptStatus> = sqlx::query_as(RECEIPTS).bind(&ids).fetch_all(pool).await?;
    for a in attempts {
        if let Some(d) = n.deliveries.iter_mut().find(|d| d.id == a.delivery_id) {
            d.history.push(a);
        }
    }
    Ok(n)
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

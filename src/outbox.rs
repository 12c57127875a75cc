//! The outbox: notifications written by producers, and the fan-out that
//! turns each due notification into one delivery per active device.
//!
//! Producers `INSERT` into `pushrelay.notifications` inside their own
//! transactions (see the README for the exact statement); [`enqueue`] is the
//! same insert for the CLI and tests. Table constraints reject malformed
//! rows at insert time, inside the producer's transaction, with a
//! constraint name that says what is wrong.
//!
//! Fan-out is one short transaction per batch: it locks due notifications
//! with `FOR UPDATE SKIP LOCKED`, inserts their deliveries and marks them
//! done in a single statement. The row locks are the lease — if the process
//! dies mid-batch, Postgres rolls the transaction back and releases them, so
//! another process fans the batch out and nothing is lost or doubled.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::retry::Priority;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("unknown app {0:?}; configured apps are: {1}")]
    UnknownApp(String, String),
    #[error("data must be a JSON object like {{\"amount\": \"12.00\"}}: {0}")]
    BadData(String),
    #[error("give either a user id or device ids as the recipient, not both or neither")]
    BadRecipient,
    #[error("give a template name or an inline body")]
    NoContent,
    #[error("the notification was rejected by the database: {0}")]
    Rejected(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A notification as a producer writes it.
#[derive(Debug, Clone, Default)]
pub struct NewNotification {
    pub app: String,
    pub user_id: Option<String>,
    pub device_ids: Option<Vec<i64>>,
    pub template: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub data: serde_json::Value,
    pub priority: Option<Priority>,
    pub collapse_key: Option<String>,
    pub ttl_seconds: Option<i32>,
    pub send_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
}

/// Inserts a notification; with an idempotency key already used for the app,
/// returns the existing notification's id instead of inserting a second.
pub async fn enqueue(pool: &PgPool, n: &NewNotification) -> Result<Uuid, OutboxError> {
    if n.user_id.is_some() == n.device_ids.is_some() {
        return Err(OutboxError::BadRecipient);
    }
    if n.template.is_none() && n.body.is_none() {
        return Err(OutboxError::NoContent);
    }
    let data = if n.data.is_null() {
        serde_json::json!({})
    } else {
        n.data.clone()
    };
    if !data.is_object() {
        return Err(OutboxError::BadData(format!("got {data}")));
    }
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO pushrelay.notifications
            (app, user_id, device_ids, template, title, body, data, priority, collapse_key,
             ttl_seconds, send_at, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, 'urgent'), $9,
                 COALESCE($10, 86400), COALESCE($11, now()), $12)
         ON CONFLICT (app, idempotency_key) DO NOTHING
         RETURNING id",
    )
    .bind(&n.app)
    .bind(&n.user_id)
    .bind(&n.device_ids)
    .bind(&n.template)
    .bind(&n.title)
    .bind(&n.body)
    .bind(&data)
    .bind(n.priority.map(Priority::as_str))
    .bind(&n.collapse_key)
    .bind(n.ttl_seconds)
    .bind(n.send_at)
    .bind(&n.idempotency_key)
    .fetch_optional(pool)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(db) if db.constraint().is_some() => OutboxError::Rejected(format!(
            "{} (constraint {})",
            db.message(),
            db.constraint().unwrap_or_default()
        )),
        other => OutboxError::Database(other),
    })?;
    match inserted {
        Some(id) => Ok(id),
        None => Ok(sqlx::query_scalar(
            "SELECT id FROM pushrelay.notifications WHERE app = $1 AND idempotency_key = $2",
        )
        .bind(&n.app)
        .bind(&n.idempotency_key)
        .fetch_one(pool)
        .await?),
    }
}

/// What one fan-out pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FanoutStats {
    pub notifications: u64,
    pub deliveries: u64,
}

/// Which apps exist and which platforms each one sends to, as fan-out
/// needs them: a device on a platform its app has no provider for gets no
/// delivery (it could never be sent).
#[derive(Debug, Clone)]
pub struct Routes {
    apps: Vec<String>,
    /// `app/platform` pairs.
    pairs: Vec<String>,
}

impl Routes {
    pub fn from_settings(settings: &crate::config::Settings) -> Routes {
        let apps = settings.apps.keys().cloned().collect();
        let pairs = settings
            .apps
            .iter()
            .flat_map(|(name, app)| {
                crate::devices::Platform::ALL
                    .into_iter()
                    .filter(|p| app.provider(*p).is_some())
                    .map(move |p| format!("{name}/{p}"))
            })
            .collect();
        Routes { apps, pairs }
    }
}

/// Claims up to `batch` due notifications and fans them out in one
/// transaction. Notifications for unknown apps fail with a reason; expired
/// ones are marked expired and create no deliveries; invalidated devices,
/// and devices on a platform their app does not send to, are skipped.
#[tracing::instrument(skip(pool, routes), fields(claimed, deliveries))]
pub async fn fan_out(
    pool: &PgPool,
    batch: i64,
    routes: &Routes,
) -> Result<FanoutStats, sqlx::Error> {
    // One statement: claim, insert deliveries, settle each notification.
    // Data-modifying CTEs share one snapshot, so the per-notification
    // delivery counts come from `inserted`, not from re-reading the table.
    let rows: Vec<(i64,)> = sqlx::query_as(
        r#"
WITH claimed AS (
    SELECT id, app, user_id, device_ids, priority,
           send_at + make_interval(secs => ttl_seconds) AS expires_at,
           app = ANY($2) AS known
      FROM pushrelay.notifications
     WHERE state = 'pending' AND send_at <= now()
     ORDER BY send_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), targets AS (
    SELECT c.id AS notification_id, d.id AS device_id, d.app, d.platform, c.priority, c.expires_at
      FROM claimed c
      JOIN pushrelay.devices d ON d.app = c.app AND d.user_id = c.user_id
     WHERE c.known AND c.expires_at > now() AND c.user_id IS NOT NULL
       AND d.invalidated_at IS NULL AND d.app || '/' || d.platform = ANY($3)
    UNION ALL
    SELECT c.id, d.id, d.app, d.platform, c.priority, c.expires_at
      FROM claimed c
      JOIN pushrelay.devices d ON d.id = ANY(c.device_ids) AND d.app = c.app
     WHERE c.known AND c.expires_at > now() AND c.device_ids IS NOT NULL
       AND d.invalidated_at IS NULL AND d.app || '/' || d.platform = ANY($3)
), inserted AS (
    INSERT INTO pushrelay.deliveries (notification_id, device_id, app, platform, priority, expires_at)
    SELECT notification_id, device_id, app, platform, priority, expires_at FROM targets
    ON CONFLICT (notification_id, device_id) DO NOTHING
    RETURNING notification_id
), counts AS (
    SELECT notification_id, count(*) AS n FROM inserted GROUP BY notification_id
), settled AS (
    UPDATE pushrelay.notifications n
       SET fanned_out_at = now(),
           state = CASE
               WHEN NOT c.known THEN 'failed'
               WHEN c.expires_at <= now() THEN 'expired'
               WHEN COALESCE(k.n, 0) = 0 THEN 'no_devices'
               ELSE 'dispatched' END,
           state_reason = CASE
               WHEN NOT c.known THEN format('unknown app %L: it is not configured in this pushrelay; add [apps.%s] to config.toml', c.app, c.app)
               WHEN c.expires_at <= now() THEN format('expired at %s before it could be sent', c.expires_at)
               WHEN COALESCE(k.n, 0) = 0 THEN 'the recipient has no active device on a platform this app sends to'
               END
      FROM claimed c LEFT JOIN counts k ON k.notification_id = c.id
     WHERE n.id = c.id
    RETURNING COALESCE(k.n, 0) AS n
)
SELECT n FROM settled
"#,
    )
    .bind(batch)
    .bind(&routes.apps)
    .bind(&routes.pairs)
    .fetch_all(pool)
    .await?;
    let stats = FanoutStats {
        notifications: rows.len() as u64,
        deliveries: rows.iter().map(|(n,)| *n as u64).sum(),
    };
    tracing::Span::current()
        .record("claimed", stats.notifications)
        .record("deliveries", stats.deliveries);
    Ok(stats)
}

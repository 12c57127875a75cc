//! The outbox: notifications written by producers, and the fan-out that
//! turns each due notification into one delivery per active device.
//!
//! Producers `INSERT` into `pushrelay.notifications` inside their own
//! transactions (see the README for the exact statement); [`enqueue`] is the
//! same insert for the CLI and tests. Table constraints reject malformed
//! rows at insert time, inside the producer's transaction, with a
//! constraint name that says what is wrong.
//!
//! Fan-out ([`fan_out`]) is one statement per batch and priority: it locks
//! due notifications with `FOR UPDATE SKIP LOCKED`, inserts their
//! deliveries already leased to the calling process (their first try needs
//! no separate claim) and settles the notifications. If the process dies
//! mid-batch, PostgreSQL rolls the statement back and releases the rows, so
//! another process fans the batch out and nothing is lost or doubled.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::content::{Options, OptionsError};
use crate::model::{Environment, Platform, Priority};

const INSERT: &str = include_str!("notifications/insert.sql");
const BY_IDEMPOTENCY_KEY: &str = include_str!("notifications/by_idempotency_key.sql");
const FAN_OUT: &str = include_str!("notifications/fan_out.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("notifications/insert", INSERT),
    ("notifications/by_idempotency_key", BY_IDEMPOTENCY_KEY),
    ("notifications/fan_out", FAN_OUT),
];

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("unknown app {0:?}; configured apps are: {1}")]
    UnknownApp(String, String),
    #[error("data must be a JSON object like {{\"amount\": \"12.00\"}}: {0}")]
    BadData(String),
    #[error("give either a user id or device ids as the recipient, not both or neither")]
    BadRecipient,
    #[error("give a template name or an inline body (only a data-only message may have neither)")]
    NoContent,
    #[error(transparent)]
    BadOptions(#[from] crate::content::OptionsError),
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
    /// Content options (`content::Options` as a JSON object); `null` for none.
    pub options: serde_json::Value,
}

/// Inserts a notification; with an idempotency key already used for the app,
/// returns the existing notification's id instead of inserting a second.
pub async fn enqueue(pool: &PgPool, n: &NewNotification) -> Result<Uuid, OutboxError> {
    if n.user_id.is_some() == n.device_ids.is_some() {
        return Err(OutboxError::BadRecipient);
    }
    let options = crate::content::Options::from_json(&n.options)?;
    if n.template.is_none() && n.body.is_none() && !options.is_data_only() {
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
    let inserted: Option<Uuid> = sqlx::query_scalar(INSERT)
        .bind(&n.app)
        .bind(&n.user_id)
        .bind(&n.device_ids)
        .bind(&n.template)
        .bind(&n.title)
        .bind(&n.body)
        .bind(&data)
        .bind(n.priority)
        .bind(&n.collapse_key)
        .bind(n.ttl_seconds)
        .bind(n.send_at)
        .bind(&n.idempotency_key)
        .bind((!n.options.is_null()).then_some(&n.options))
        .fetch_optional(pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.constraint().is_some() => {
                OutboxError::Rejected(format!(
                    "{} (constraint {})",
                    db.message(),
                    db.constraint().unwrap_or_default()
                ))
            }
            other => OutboxError::Database(other),
        })?;
    match inserted {
        Some(id) => Ok(id),
        None => Ok(sqlx::query_scalar(BY_IDEMPOTENCY_KEY)
            .bind(&n.app)
            .bind(&n.idempotency_key)
            .fetch_one(pool)
            .await?),
    }
}

/// Which apps exist and which platforms each one sends to, as fan-out
/// needs them: a device on a platform its app has no provider for gets no
/// delivery (it could never be sent).
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub apps: Vec<String>,
    /// `app/platform` pairs.
    pub pairs: Vec<String>,
}

/// What every delivery of one notification shares.
#[derive(Debug, sqlx::FromRow)]
pub struct Content {
    /// The notification's id.
    pub id: Uuid,
    pub app: String,
    pub priority: Priority,
    pub template: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub data: serde_json::Value,
    pub collapse_key: Option<String>,
    #[sqlx(try_from = "serde_json::Value")]
    pub options: StoredOptions,
    /// `ttl_seconds = 0`: one try, never retried, sent with a zero expiry.
    pub now_or_never: bool,
    pub expires_at: DateTime<Utc>,
}

/// A notification's content options, parsed once when its row is read:
/// one [`Content`] serves every delivery of the notification. `None` when
/// the notification row is gone.
#[derive(Debug, Clone)]
pub struct StoredOptions(pub Option<Result<Options, OptionsError>>);

impl From<serde_json::Value> for StoredOptions {
    fn from(v: serde_json::Value) -> StoredOptions {
        StoredOptions((!v.is_null()).then(|| Options::from_json(&v)))
    }
}

/// One fanned-out notification: its content, and per delivery (same index
/// in each vector) the delivery and its device.
#[derive(Debug, sqlx::FromRow)]
pub struct FannedOut {
    #[sqlx(flatten)]
    pub content: Content,
    pub delivery_ids: Vec<i64>,
    pub device_ids: Vec<i64>,
    pub platforms: Vec<Platform>,
    pub tokens: Vec<String>,
    pub environments: Vec<Environment>,
    pub locales: Vec<String>,
}

/// Claims up to `batch` due notifications of `priority` and fans them out
/// in one statement, leasing the new deliveries to `worker`. Notifications
/// for unknown apps fail with a reason; expired ones are marked expired
/// and create no deliveries; invalidated devices, and devices on a platform
/// their app does not send to, are skipped. Returns every claimed
/// notification (those without deliveries too).
#[tracing::instrument(skip(pool, routes), fields(claimed, deliveries))]
pub async fn fan_out(
    pool: &PgPool,
    priority: Priority,
    batch: i64,
    routes: &Routes,
    worker: &str,
) -> Result<Vec<FannedOut>, sqlx::Error> {
    let rows: Vec<FannedOut> = sqlx::query_as(FAN_OUT)
        .bind(batch)
        .bind(&routes.apps)
        .bind(&routes.pairs)
        .bind(worker)
        .bind(priority)
        .fetch_all(pool)
        .await?;
    tracing::Span::current()
        .record("claimed", rows.len())
        .record(
            "deliveries",
            rows.iter().map(|r| r.delivery_ids.len()).sum::<usize>(),
        );
    Ok(rows)
}

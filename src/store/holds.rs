//! Provider holds: the pauses of an app/platform/environment's sends,
//! recorded so `pushrelay status` (another process) can show them with
//! what to check, and so every process honours a pause another one opened.
//! Also the undo of a burst the misconfiguration guard caught: devices it
//! invalidated are restored and their deliveries pending again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::model::{Environment, Platform};

const RECORD: &str = include_str!("holds/record.sql");
const ACTIVE: &str = include_str!("holds/active.sql");
const RESTORE_DEVICES: &str = include_str!("holds/restore_devices.sql");
const RESTORE_DELIVERIES: &str = include_str!("holds/restore_deliveries.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("holds/record", RECORD),
    ("holds/active", ACTIVE),
    ("holds/restore_devices", RESTORE_DEVICES),
    ("holds/restore_deliveries", RESTORE_DELIVERIES),
];

/// A recorded pause.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Hold {
    pub app: String,
    pub platform: Platform,
    pub environment: Environment,
    pub worker: String,
    /// `breaker`, `config_error` or `guard`.
    pub kind: String,
    pub reason: String,
    pub hint: String,
    /// Stamped by the database's clock when recorded (`record` does not
    /// write it).
    pub paused_at: DateTime<Utc>,
    pub paused_until: DateTime<Utc>,
}

/// Records (or renews) a hold `hold.worker` opened.
pub async fn record(pool: &PgPool, hold: &Hold) -> Result<(), sqlx::Error> {
    sqlx::query(RECORD)
        .bind(&hold.app)
        .bind(hold.platform)
        .bind(hold.environment)
        .bind(&hold.worker)
        .bind(&hold.kind)
        .bind(&hold.reason)
        .bind(&hold.hint)
        .bind(hold.paused_until)
        .execute(pool)
        .await?;
    Ok(())
}

/// The holds still running, of one platform or all.
pub async fn active(pool: &PgPool, platform: Option<Platform>) -> Result<Vec<Hold>, sqlx::Error> {
    sqlx::query_as(ACTIVE).bind(platform).fetch_all(pool).await
}

/// Restores the devices a burst invalidated (since `since`) and puts their
/// token_dead deliveries back to pending, due at `until`. Idempotent, so
/// it can run again once results still on their way are written. Returns
/// (devices, deliveries) restored.
pub async fn restore_burst(
    pool: &PgPool,
    devices: &[i64],
    deliveries: &[i64],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    why: &str,
) -> Result<(u64, u64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let d = sqlx::query(RESTORE_DEVICES)
        .bind(devices)
        .bind(since)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let q = sqlx::query(RESTORE_DELIVERIES)
        .bind(deliveries)
        .bind(until)
        .bind(why)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok((d, q))
}

//! Erasure: everything pushrelay keeps about one user, deleted on request
//! (the right to erasure): the user's devices, the notifications addressed
//! to the user, every delivery of those notifications or to those devices,
//! their send attempts and what the devices reported, and the user's place
//! in campaigns' audiences and on uploaded user lists.
//!
//! One transaction of plain statements rather than one statement of CTEs:
//! each statement sees what committed before it started, so deliveries a
//! concurrent fan-out made for the user's notifications (the first step
//! waits for it) are erased with the rest.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

const ERASE_NOTIFICATIONS: &str = include_str!("users/erase_notifications.sql");
const ERASE_DEVICES: &str = include_str!("users/erase_devices.sql");
const ERASE_DELIVERIES: &str = include_str!("users/erase_deliveries.sql");
const ERASE_ATTEMPTS: &str = include_str!("users/erase_attempts.sql");
const ERASE_DEVICE_RECEIPTS: &str = include_str!("users/erase_device_receipts.sql");
const ERASE_CAMPAIGN_TARGETS: &str = include_str!("users/erase_campaign_targets.sql");
const ERASE_LIST_MEMBERSHIPS: &str = include_str!("users/erase_list_memberships.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("users/erase_notifications", ERASE_NOTIFICATIONS),
    ("users/erase_devices", ERASE_DEVICES),
    ("users/erase_deliveries", ERASE_DELIVERIES),
    ("users/erase_attempts", ERASE_ATTEMPTS),
    ("users/erase_device_receipts", ERASE_DEVICE_RECEIPTS),
    ("users/erase_campaign_targets", ERASE_CAMPAIGN_TARGETS),
    ("users/erase_list_memberships", ERASE_LIST_MEMBERSHIPS),
];

/// How often an erasure that lost a deadlock against the worker (both
/// touch the same deliveries, in different orders) is tried again.
const DEADLOCK_RETRIES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What an erasure deleted. All zero when there was nothing (left) to erase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub devices: u64,
    pub notifications: u64,
    pub deliveries: u64,
    /// Send attempts (the providers' receipts).
    pub attempts: u64,
    /// What the devices reported (received, displayed, opened).
    pub receipts: u64,
}

/// Erases a user in the apps `apps` allows (`None`: every app). Running it
/// again erases nothing and returns zeros.
pub async fn erase(
    pool: &PgPool,
    user_id: &str,
    apps: Option<&[String]>,
) -> Result<Erased, UserError> {
    let mut tries = 0;
    loop {
        match erase_once(pool, user_id, apps).await {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("40P01") && tries < DEADLOCK_RETRIES =>
            {
                tries += 1;
                tracing::info!(
                    tries,
                    "erasure lost a deadlock against the worker; trying again"
                );
            }
            other => return Ok(other?),
        }
    }
}

async fn erase_once(
    pool: &PgPool,
    user_id: &str,
    apps: Option<&[String]>,
) -> Result<Erased, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let notifications: Vec<Uuid> = sqlx::query_scalar(ERASE_NOTIFICATIONS)
        .bind(user_id)
        .bind(apps)
        .fetch_all(&mut *tx)
        .await?;
    let devices: Vec<i64> = sqlx::query_scalar(ERASE_DEVICES)
        .bind(user_id)
        .bind(apps)
        .fetch_all(&mut *tx)
        .await?;
    let mut erased = Erased {
        devices: devices.len() as u64,
        notifications: notifications.len() as u64,
        ..Erased::default()
    };
    // On uploaded user lists whether or not the user has devices left.
    sqlx::query(ERASE_LIST_MEMBERSHIPS)
        .bind(user_id)
        .bind(apps)
        .execute(&mut *tx)
        .await?;
    if notifications.is_empty() && devices.is_empty() {
        tx.commit().await?;
        return Ok(erased);
    }
    if !devices.is_empty() {
        sqlx::query(ERASE_CAMPAIGN_TARGETS)
            .bind(&devices)
            .execute(&mut *tx)
            .await?;
    }
    let deliveries: Vec<i64> = sqlx::query_scalar(ERASE_DELIVERIES)
        .bind(&notifications)
        .bind(&devices)
        .fetch_all(&mut *tx)
        .await?;
    erased.deliveries = deliveries.len() as u64;
    erased.attempts = sqlx::query(ERASE_ATTEMPTS)
        .bind(&deliveries)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    erased.receipts = sqlx::query(ERASE_DEVICE_RECEIPTS)
        .bind(&deliveries)
        .bind(&notifications)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(erased)
}

//! Retention: finished notifications are deleted with their deliveries and
//! receipts once they are older than the retention period, and ended
//! campaigns' targets too; the per-minute outcome counts after a week and
//! expired console sessions at once. All in small
//! batches so the cleaner never holds long locks. Nothing cascades (the
//! tables have no foreign keys, see migration 0002): every delete here
//! names all three tables.

use sqlx::PgPool;

const CLEAN: &str = include_str!("history/clean.sql");
const CLEAN_CAMPAIGN_TARGETS: &str = include_str!("history/clean_campaign_targets.sql");
const CLEAN_ATTEMPT_COUNTS: &str = include_str!("history/clean_attempt_counts.sql");
const CLEAN_CONSOLE_SESSIONS: &str = include_str!("history/clean_console_sessions.sql");
const FORGET_APP: &str = include_str!("history/forget_app.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("history/clean", CLEAN),
    ("history/clean_campaign_targets", CLEAN_CAMPAIGN_TARGETS),
    ("history/clean_attempt_counts", CLEAN_ATTEMPT_COUNTS),
    ("history/clean_console_sessions", CLEAN_CONSOLE_SESSIONS),
    ("history/forget_app", FORGET_APP),
];

/// Deletes up to `limit` finished notifications older than `days`.
pub async fn clean(pool: &PgPool, days: u32, limit: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(CLEAN)
        .bind(days as i32)
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Deletes up to `limit` targets of campaigns that ended more than `days`
/// ago (their notifications and deliveries go by [`clean`]).
pub async fn clean_campaign_targets(
    pool: &PgPool,
    days: u32,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(CLEAN_CAMPAIGN_TARGETS)
        .bind(days as i32)
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

/// How long the per-minute outcome counts are kept, whatever
/// `retention_days` says: the overview reads the last hour, and a week
/// still shows last week's incident.
pub const ATTEMPT_COUNT_DAYS: u32 = 7;

/// Deletes up to `limit` per-minute outcome counts older than `days`.
pub async fn clean_attempt_counts(
    pool: &PgPool,
    days: u32,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(CLEAN_ATTEMPT_COUNTS)
        .bind(days as i32)
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Deletes up to `limit` expired console sessions.
pub async fn clean_console_sessions(pool: &PgPool, limit: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(CLEAN_CONSOLE_SESSIONS)
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Deletes every notification, delivery, receipt and device of `app`.
pub async fn forget_app(pool: &PgPool, app: &str) -> Result<(), sqlx::Error> {
    sqlx::query(FORGET_APP).bind(app).execute(pool).await?;
    Ok(())
}

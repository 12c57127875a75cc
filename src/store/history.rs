//! Retention: finished notifications are deleted with their deliveries and
//! receipts once they are older than the retention period, and ended
//! campaigns' targets too, in small
//! batches so the cleaner never holds long locks. Nothing cascades (the
//! tables have no foreign keys, see migration 0002): every delete here
//! names all three tables.

use sqlx::PgPool;

const CLEAN: &str = include_str!("history/clean.sql");
const CLEAN_CAMPAIGN_TARGETS: &str = include_str!("history/clean_campaign_targets.sql");
const FORGET_APP: &str = include_str!("history/forget_app.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("history/clean", CLEAN),
    ("history/clean_campaign_targets", CLEAN_CAMPAIGN_TARGETS),
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

/// Deletes every notification, delivery, receipt and device of `app`.
pub async fn forget_app(pool: &PgPool, app: &str) -> Result<(), sqlx::Error> {
    sqlx::query(FORGET_APP).bind(app).execute(pool).await?;
    Ok(())
}

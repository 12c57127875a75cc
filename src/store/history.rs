//! Retention: finished notifications are deleted with their deliveries and
//! receipts once they are older than the retention period, in small
//! batches so the cleaner never holds long locks.

use sqlx::PgPool;

const CLEAN: &str = include_str!("history/clean.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[("history/clean", CLEAN)];

/// Deletes up to `limit` finished notifications older than `days`.
pub async fn clean(pool: &PgPool, days: u32, limit: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(CLEAN)
        .bind(days as i32)
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

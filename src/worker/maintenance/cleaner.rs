//! The cleaner: deletes finished notifications, with their deliveries and
//! receipts, and the targets of ended campaigns, once they are older than
//! `retention_days`.

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::store::history;

const BATCH: i64 = 1000;

/// One pass: delete in batches until nothing old is left.
pub async fn pass(pool: &PgPool, retention_days: u32, stop: &CancellationToken) {
    let mut deleted = 0;
    loop {
        match history::clean(pool, retention_days, BATCH).await {
            Ok(n) => {
                deleted += n;
                if n < BATCH as u64 || stop.is_cancelled() {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "history cleanup failed; will try again");
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, retention_days, "deleted old notifications");
    }
    let mut targets = 0;
    loop {
        match history::clean_campaign_targets(pool, retention_days, BATCH * 10).await {
            Ok(n) => {
                targets += n;
                if n < BATCH as u64 * 10 || stop.is_cancelled() {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "campaign targets cleanup failed; will try again");
                break;
            }
        }
    }
    if targets > 0 {
        tracing::info!(
            targets,
            retention_days,
            "deleted the targets of old campaigns"
        );
    }
}

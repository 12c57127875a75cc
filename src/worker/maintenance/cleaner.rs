//! The cleaner: deletes finished notifications, with their deliveries and
//! receipts, and the targets of ended campaigns, once they are older than
//! `retention_days`; the per-minute outcome counts once a week old; and
//! expired console sessions.

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
    let counts = drain(stop, "per-minute outcome counts", |limit| {
        history::clean_attempt_counts(pool, history::ATTEMPT_COUNT_DAYS, limit)
    })
    .await;
    if counts > 0 {
        tracing::debug!(
            counts,
            "deleted per-minute outcome counts older than a week"
        );
    }
    let sessions = drain(stop, "console sessions", |limit| {
        history::clean_console_sessions(pool, limit)
    })
    .await;
    if sessions > 0 {
        tracing::debug!(sessions, "deleted expired console sessions");
    }
}

/// Runs one batched delete until a batch comes back short (or the process
/// stops); returns how many rows went.
async fn drain<F, Fut>(stop: &CancellationToken, what: &str, mut delete: F) -> u64
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    let mut deleted = 0;
    loop {
        match delete(BATCH).await {
            Ok(n) => {
                deleted += n;
                if n < BATCH as u64 || stop.is_cancelled() {
                    return deleted;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cleaning up old {what} failed; will try again");
                return deleted;
            }
        }
    }
}

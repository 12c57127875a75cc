//! Housekeeping loops: the lease rescuer and the retention cleaner.
//!
//! The rescuer hands deliveries whose lease ran out (their process died or
//! hung mid-send) back to the queue and writes a `lost` receipt, so support
//! sees why a device may have received a message twice. The cleaner deletes
//! finished notifications (with their deliveries and receipts) older than
//! the retention period, in small batches so it never holds long locks.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Re-queues up to `limit` deliveries whose lease expired. Returns how many.
#[tracing::instrument(skip(pool))]
pub async fn rescue_expired_leases(pool: &PgPool, limit: i64) -> Result<u64, sqlx::Error> {
    let rescued: i64 = sqlx::query_scalar(
        r#"
WITH lost AS (
    SELECT id, lease_owner, lease_expires_at FROM pushrelay.deliveries
     WHERE state = 'sending' AND lease_expires_at < now()
     ORDER BY lease_expires_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), requeued AS (
    UPDATE pushrelay.deliveries d
       SET state = 'pending', next_attempt_at = now(), lease_owner = NULL,
           lease_expires_at = NULL, updated_at = now(),
           last_error = format('lease held by %s expired at %s; re-queued', lost.lease_owner, lost.lease_expires_at)
      FROM lost
     WHERE d.id = lost.id
    RETURNING d.id, d.attempts, lost.lease_owner, lost.lease_expires_at
), receipts AS (
    INSERT INTO pushrelay.attempts
        (delivery_id, attempt, worker, provider, started_at, finished_at, latency_ms, outcome, reason, retry_at)
    SELECT id, attempts, lease_owner, '(unknown)', lease_expires_at, now(), 0, 'lost',
           'the process that claimed this delivery stopped reporting (crashed or hung); it may or may not have been sent',
           now()
      FROM requeued
)
SELECT count(*) FROM requeued
"#,
    )
    .bind(limit)
    .fetch_one(pool)
    .await?;
    if rescued > 0 {
        metrics::counter!("pushrelay_leases_rescued_total").increment(rescued as u64);
        tracing::warn!(rescued, "re-queued deliveries whose lease expired");
    }
    Ok(rescued as u64)
}

/// Deletes up to `limit` finished notifications older than `days`.
pub async fn clean_history(pool: &PgPool, days: u32, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM pushrelay.notifications WHERE id IN (
            SELECT n.id FROM pushrelay.notifications n
             WHERE n.created_at < now() - make_interval(days => $1) AND n.state <> 'pending'
               AND NOT EXISTS (SELECT 1 FROM pushrelay.deliveries d
                                WHERE d.notification_id = n.id AND d.state IN ('pending', 'sending'))
             ORDER BY n.created_at
             LIMIT $2)",
    )
    .bind(days as i32)
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Runs the rescuer every `every` and the cleaner every ten minutes.
pub async fn run(pool: PgPool, every: Duration, retention_days: u32, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let clean_every = Duration::from_secs(600);
    let mut last_clean: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.cancelled() => return,
        }
        if let Err(e) = rescue_expired_leases(&pool, 1000).await {
            tracing::error!(error = %e, "lease rescue failed; will try again");
        }
        if retention_days > 0 && last_clean.is_none_or(|t| t.elapsed() >= clean_every) {
            last_clean = Some(tokio::time::Instant::now());
            loop {
                match clean_history(&pool, retention_days, 1000).await {
                    Ok(n) if n == 1000 && !stop.is_cancelled() => continue,
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(
                                deleted = n,
                                retention_days,
                                "deleted old notifications"
                            );
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "history cleanup failed; will try again");
                        break;
                    }
                }
            }
        }
    }
}

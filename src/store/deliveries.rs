//! Deliveries: claiming due retries, writing results back in batches, and
//! handing leased deliveries back.
//!
//! A delivery is leased to one process (`lease_owner`) while it is sent;
//! first tries are leased by fan-out itself, retries by [`claim_retries`].
//! [`write_results`] writes a batch in one transaction — the deliveries'
//! new states (only where the lease is still this process's), one receipt
//! per try, the devices whose token died, and the tries added to the
//! per-minute outcome counts the console's overview reads.

use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::model::{AttemptOutcome, DeliveryState, Environment, Platform, Priority};

const CLAIM_RETRIES: &str = include_str!("deliveries/claim_retries.sql");
const COMPLETE: &str = include_str!("deliveries/complete.sql");
const COUNT_ATTEMPTS: &str = include_str!("deliveries/count_attempts.sql");
const INSERT_RECEIPTS: &str = include_str!("deliveries/insert_receipts.sql");
const INVALIDATE_DEVICES: &str = include_str!("deliveries/invalidate_devices.sql");
const LOST_RECEIPTS: &str = include_str!("deliveries/lost_receipts.sql");
const RELEASE: &str = include_str!("deliveries/release.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("deliveries/claim_retries", CLAIM_RETRIES),
    ("deliveries/complete", COMPLETE),
    ("deliveries/count_attempts", COUNT_ATTEMPTS),
    ("deliveries/lost_receipts", LOST_RECEIPTS),
    ("deliveries/insert_receipts", INSERT_RECEIPTS),
    ("deliveries/invalidate_devices", INVALIDATE_DEVICES),
    ("deliveries/release", RELEASE),
];

/// A retry as claimed, with what is needed to send it. The device and
/// notification columns are `None` when those rows no longer exist.
#[derive(Debug, sqlx::FromRow)]
pub struct ClaimedRetry {
    pub id: i64,
    pub notification_id: Uuid,
    pub device_id: i64,
    pub app: String,
    pub priority: Priority,
    pub expires_at: DateTime<Utc>,
    pub attempts: i32,
    pub tries: i32,
    pub template: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub data: Option<serde_json::Value>,
    pub collapse_key: Option<String>,
    pub options: Option<serde_json::Value>,
    pub now_or_never: bool,
    pub token: Option<String>,
    pub environment: Option<Environment>,
    pub locale: Option<String>,
    pub invalidated_at: Option<DateTime<Utc>>,
    pub invalidated_reason: Option<String>,
    /// When the notification was enqueued (`None`: it no longer exists).
    pub created_at: Option<DateTime<Utc>>,
    pub sns_endpoint_arn: Option<String>,
    /// `None` when the device no longer exists.
    pub sns_endpoint_stale: Option<bool>,
}

/// Claims up to `limit` due retries of one platform and priority for
/// `worker`, skipping apps on hold.
pub async fn claim_retries(
    pool: &PgPool,
    platform: Platform,
    priority: Priority,
    limit: usize,
    worker: &str,
    held_apps: &[String],
) -> Result<Vec<ClaimedRetry>, sqlx::Error> {
    sqlx::query_as(CLAIM_RETRIES)
        .bind(platform)
        .bind(priority)
        .bind(limit as i64)
        .bind(worker)
        .bind(held_apps)
        .fetch_all(pool)
        .await
}

/// What the claim counted that must be given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// A try was made and counts.
    Nothing,
    /// A try was made (it has a receipt) but must not use up the retry
    /// budget: the provider rejected our credentials.
    Attempt,
    /// Nothing was sent.
    AttemptAndTry,
}

/// The result of handling one leased delivery.
#[derive(Debug)]
pub struct Completion {
    pub delivery_id: i64,
    pub state: DeliveryState,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub undo: Undo,
    pub provider_message_id: Option<String>,
    pub last_error: Option<String>,
    pub receipt: Option<Receipt>,
    pub invalidate: Option<Invalidation>,
    /// SNS: the endpoint the send created or repaired, for the device.
    pub endpoint: Option<EndpointUpdate>,
}

/// A device's SNS endpoint, as a send left it: stored and marked checked
/// unless the device's token changed meanwhile.
#[derive(Debug)]
pub struct EndpointUpdate {
    pub device_id: i64,
    pub token: String,
    pub arn: String,
}

/// One try, as support reads it back.
#[derive(Debug)]
pub struct Receipt {
    pub attempt: i32,
    pub provider: &'static str,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
    pub status_code: Option<i32>,
    pub reason: Option<String>,
    /// The notification's app: the executor's shared copy, the one its
    /// metric labels use (no allocation per try).
    pub app: Arc<str>,
    pub platform: Platform,
    /// The bounded reason of `pushrelay_attempts_total` (`none` when
    /// delivered), which keeps the outcome counts' keys a short list.
    pub label: &'static str,
}

/// A device whose token the provider reported dead.
#[derive(Debug)]
pub struct Invalidation {
    pub device_id: i64,
    pub reason: String,
    /// When the provider says the token became invalid (APNs 410).
    pub since: Option<DateTime<Utc>>,
}

/// Writes a batch of results in one transaction, with its tries added to
/// the per-minute outcome counts (`attempt_counts`). Returns how many
/// deliveries were still leased to `worker` (the others were taken over
/// by another process, whose result stands).
#[tracing::instrument(skip_all, fields(batch = batch.len()))]
pub async fn write_results(
    pool: &PgPool,
    worker: &str,
    batch: &[&Completion],
) -> Result<u64, sqlx::Error> {
    let n = batch.len();
    let mut ids = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut next_at = Vec::with_capacity(n);
    let mut undo_attempt = Vec::with_capacity(n);
    let mut undo_try = Vec::with_capacity(n);
    let mut pmids = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    for c in batch {
        ids.push(c.delivery_id);
        states.push(c.state.as_str());
        next_at.push(c.next_attempt_at);
        undo_attempt.push(i32::from(c.undo != Undo::Nothing));
        undo_try.push(i32::from(c.undo == Undo::AttemptAndTry));
        pmids.push(c.provider_message_id.as_deref());
        errors.push(c.last_error.as_deref());
    }
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(COMPLETE)
        .bind(&ids)
        .bind(&states)
        .bind(&next_at)
        .bind(&undo_attempt)
        .bind(&undo_try)
        .bind(&pmids)
        .bind(&errors)
        .bind(worker)
        .execute(&mut *tx)
        .await?
        .rows_affected();

    let m = batch.iter().filter(|c| c.receipt.is_some()).count();
    let mut kept_lost = None;
    if m > 0 {
        let mut delivery = Vec::with_capacity(m);
        let mut number = Vec::with_capacity(m);
        let mut provider = Vec::with_capacity(m);
        let mut started = Vec::with_capacity(m);
        let mut finished = Vec::with_capacity(m);
        let mut latency = Vec::with_capacity(m);
        let mut outcome = Vec::with_capacity(m);
        let mut status = Vec::with_capacity(m);
        let mut reason = Vec::with_capacity(m);
        let mut retry_at = Vec::with_capacity(m);
        let mut pmid = Vec::with_capacity(m);
        for c in batch {
            let Some(r) = &c.receipt else { continue };
            delivery.push(c.delivery_id);
            number.push(r.attempt);
            provider.push(r.provider);
            started.push(r.started_at);
            finished.push(r.finished_at);
            latency.push((r.finished_at - r.started_at).num_milliseconds() as i32);
            outcome.push(r.outcome.as_str());
            status.push(r.status_code);
            reason.push(r.reason.as_deref());
            retry_at.push(if c.state == DeliveryState::Pending {
                c.next_attempt_at
            } else {
                None
            });
            pmid.push(c.provider_message_id.as_deref());
        }
        let inserted = sqlx::query(INSERT_RECEIPTS)
            .bind(&delivery)
            .bind(&number)
            .bind(&provider)
            .bind(&started)
            .bind(&finished)
            .bind(&latency)
            .bind(&outcome)
            .bind(&status)
            .bind(&reason)
            .bind(&retry_at)
            .bind(&pmid)
            .bind(worker)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // A try the rescuer already recorded (and counted) as `lost` keeps
        // that receipt; counting ours too would count the try twice. Only
        // after a rescue, so the look-up is off the usual path.
        kept_lost = Some(if inserted < m as u64 {
            sqlx::query_scalar(LOST_RECEIPTS)
                .bind(&delivery)
                .bind(&number)
                .fetch_all(&mut *tx)
                .await?
        } else {
            Vec::new()
        });
    }

    let dead: Vec<&Invalidation> = batch.iter().filter_map(|c| c.invalidate.as_ref()).collect();
    if !dead.is_empty() {
        let ids: Vec<i64> = dead.iter().map(|d| d.device_id).collect();
        let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
        let since: Vec<Option<DateTime<Utc>>> = dead.iter().map(|d| d.since).collect();
        sqlx::query(INVALIDATE_DEVICES)
            .bind(&ids)
            .bind(&reasons)
            .bind(&since)
            .execute(&mut *tx)
            .await?;
    }
    let mut endpoints: Vec<&EndpointUpdate> =
        batch.iter().filter_map(|c| c.endpoint.as_ref()).collect();
    if !endpoints.is_empty() {
        // In id order, as every completer locks them: none waits on another.
        endpoints.sort_unstable_by_key(|e| e.device_id);
        let ids: Vec<i64> = endpoints.iter().map(|e| e.device_id).collect();
        let tokens: Vec<&str> = endpoints.iter().map(|e| e.token.as_str()).collect();
        let arns: Vec<&str> = endpoints.iter().map(|e| e.arn.as_str()).collect();
        sqlx::query(crate::store::sns::SET_ENDPOINTS)
            .bind(&ids)
            .bind(&tokens)
            .bind(&arns)
            .execute(&mut *tx)
            .await?;
    }
    // Last: every process's batches add to the same few rows (this
    // minute's deliveries), whose locks are then held only until commit.
    if let Some(skip) = kept_lost {
        count_attempts(&mut tx, batch, &skip).await?;
    }
    tx.commit().await?;
    Ok(updated)
}

/// One row of `attempt_counts`: (minute, app, platform, outcome, reason).
type CountKey<'a> = (
    DateTime<Utc>,
    &'a str,
    &'static str,
    &'static str,
    &'static str,
);

/// Adds the batch's tries (but those in `skip`) to the per-minute outcome
/// counts in one statement. The rows are summed here and sent in key
/// order: every process then locks the rows it shares with another in
/// the same order, so two completers never deadlock on a busy minute.
async fn count_attempts(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    batch: &[&Completion],
    skip: &[i64],
) -> Result<(), sqlx::Error> {
    let mut keys: Vec<CountKey> = batch
        .iter()
        .filter(|c| !skip.contains(&c.delivery_id))
        .filter_map(|c| c.receipt.as_ref())
        .map(|r| {
            let minute = r
                .finished_at
                .duration_trunc(TimeDelta::minutes(1))
                .unwrap_or(r.finished_at);
            (
                minute,
                &*r.app,
                r.platform.as_str(),
                r.outcome.as_str(),
                r.label,
            )
        })
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    let mut minute = Vec::new();
    let mut app = Vec::new();
    let mut platform = Vec::new();
    let mut outcome = Vec::new();
    let mut reason = Vec::new();
    let mut count: Vec<i64> = Vec::new();
    for k in keys.chunk_by(|a, b| a == b) {
        minute.push(k[0].0);
        app.push(k[0].1);
        platform.push(k[0].2);
        outcome.push(k[0].3);
        reason.push(k[0].4);
        count.push(k.len() as i64);
    }
    sqlx::query(COUNT_ATTEMPTS)
        .bind(&minute)
        .bind(&app)
        .bind(&platform)
        .bind(&outcome)
        .bind(&reason)
        .bind(&count)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Hands deliveries `worker` holds back to the queue, due now, without
/// counting the try.
pub async fn release(pool: &PgPool, ids: &[i64], worker: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(RELEASE)
        .bind(ids)
        .bind(worker)
        .execute(pool)
        .await?
        .rows_affected())
}

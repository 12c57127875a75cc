//! Dispatch: claim due deliveries, render, send, classify, record.
//!
//! Each platform has its own lane with its own concurrency budget, so a slow
//! or failing APNs never takes FCM's send slots. A lane claims only as many
//! deliveries as it has free slots (urgent before bulk), under a lease, with
//! `FOR UPDATE SKIP LOCKED`, so any number of processes can share the
//! table. Every claimed delivery is sent at once by its own task; results go
//! to one [`Completer`] per process that writes them back in batches.
//!
//! Shutdown: the lane stops claiming, gives in-flight sends the grace
//! period, then aborts the rest and hands their deliveries back (attempt
//! not counted) so another process can take them immediately.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::breaker::{Change, Holds};
use crate::config::Settings;
use crate::devices::{Environment, Platform};
use crate::providers::{Message, Providers, SendError};
use crate::retry::{self, Priority, Verdict};
use crate::templates::{Rendered, Templates};

/// A delivery as claimed, with what is needed to send it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Claimed {
    id: i64,
    device_id: i64,
    app: String,
    priority: String,
    expires_at: DateTime<Utc>,
    attempts: i32,
    template: Option<String>,
    title: Option<String>,
    body: Option<String>,
    data: serde_json::Value,
    collapse_key: Option<String>,
    token: String,
    environment: String,
    locale: String,
    invalidated_at: Option<DateTime<Utc>>,
    invalidated_reason: Option<String>,
}

/// The result of handling one claimed delivery, written by the completer.
#[derive(Debug)]
pub(crate) struct Completion {
    delivery_id: i64,
    state: &'static str,
    next_attempt_at: Option<DateTime<Utc>>,
    /// True when no send happened (or it must not count), to give the
    /// claimed attempt back.
    undo_attempt: bool,
    provider_message_id: Option<String>,
    last_error: Option<String>,
    attempt: Option<AttemptRecord>,
    invalidate: Option<Invalidation>,
}

#[derive(Debug)]
struct AttemptRecord {
    number: i32,
    provider: &'static str,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: &'static str,
    status_code: Option<i32>,
    reason: Option<String>,
}

#[derive(Debug)]
struct Invalidation {
    device_id: i64,
    reason: String,
    since: Option<DateTime<Utc>>,
}

/// What every lane of one process shares.
pub(crate) struct Ctx {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub providers: Providers,
    pub templates: Arc<Templates>,
    pub worker_id: Arc<str>,
    pub completions: mpsc::Sender<Completion>,
}

const CLAIM_SQL: &str = r#"
WITH due AS (
    SELECT id FROM pushrelay.deliveries
     WHERE state = 'pending' AND platform = $1 AND priority = $2
       AND next_attempt_at <= now() AND app <> ALL($5)
     ORDER BY next_attempt_at
     LIMIT $3
       FOR UPDATE SKIP LOCKED
)
UPDATE pushrelay.deliveries d
   SET state = 'sending', attempts = d.attempts + 1, lease_owner = $4,
       lease_expires_at = now() + make_interval(secs => $6), updated_at = now()
  FROM due, pushrelay.notifications n, pushrelay.devices v
 WHERE d.id = due.id AND n.id = d.notification_id AND v.id = d.device_id
RETURNING d.id, d.device_id, d.app, d.priority, d.expires_at, d.attempts,
          n.template, n.title, n.body, n.data, n.collapse_key,
          v.token, v.environment, v.locale, v.invalidated_at, v.invalidated_reason
"#;

/// One platform's dispatch loop.
pub(crate) struct Lane {
    ctx: Arc<Ctx>,
    platform: Platform,
    holds: Arc<Holds>,
    in_flight: Arc<AtomicUsize>,
    slot_freed: Arc<Notify>,
    /// Deliveries whose send task was aborted; handed back at shutdown.
    aborted: Arc<Mutex<Vec<i64>>>,
}

impl Lane {
    pub fn new(ctx: Arc<Ctx>, platform: Platform) -> Lane {
        let w = &ctx.settings.worker;
        let holds = Arc::new(Holds::new(
            w.breaker_threshold,
            Duration::from_secs(w.breaker_cooldown_secs),
        ));
        Lane {
            ctx,
            platform,
            holds,
            in_flight: Arc::new(AtomicUsize::new(0)),
            slot_freed: Arc::new(Notify::new()),
            aborted: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Claims and sends until `stop`; then drains (see module docs).
    #[tracing::instrument(name = "lane", skip_all, fields(platform = %self.platform))]
    pub async fn run(self, wake: &Notify, stop: CancellationToken, hard_stop: CancellationToken) {
        let settings = &self.ctx.settings;
        let concurrency = settings.lanes.get(self.platform).concurrency as usize;
        let batch = settings.worker.dispatch_batch as usize;
        // Claim in sizeable chunks rather than one row per freed slot.
        let low_water = (concurrency.min(batch) / 8).max(1);
        let poll = settings.worker.poll_interval();
        let mut tasks = JoinSet::new();
        let mut db_backoff = Duration::from_millis(100);
        loop {
            while tasks.try_join_next().is_some() {}
            if stop.is_cancelled() {
                break;
            }
            let free = concurrency.saturating_sub(self.in_flight.load(Ordering::Acquire));
            if free < low_water {
                tokio::select! {
                    _ = self.slot_freed.notified() => continue,
                    _ = stop.cancelled() => break,
                }
            }
            let want = free.min(batch);
            let claimed = match self.claim(want).await {
                Ok(c) => {
                    db_backoff = Duration::from_millis(100);
                    c
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?db_backoff, "claiming deliveries failed");
                    tokio::select! {
                        _ = tokio::time::sleep(db_backoff) => {},
                        _ = stop.cancelled() => break,
                    }
                    db_backoff = (db_backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let got = claimed.len();
            for row in claimed {
                self.in_flight.fetch_add(1, Ordering::AcqRel);
                tasks.spawn(self.send_task(row));
            }
            metrics::gauge!("pushrelay_sends_in_flight", "platform" => self.platform.as_str())
                .set(self.in_flight.load(Ordering::Relaxed) as f64);
            if got < want {
                // Caught up: sleep until new work is signalled or the poll
                // interval passes (scheduled retries need no signal).
                tokio::select! {
                    _ = wake.notified() => {},
                    _ = tokio::time::sleep(poll) => {},
                    _ = stop.cancelled() => break,
                }
            }
        }
        self.drain(tasks, hard_stop).await;
    }

    async fn drain(&self, mut tasks: JoinSet<()>, hard_stop: CancellationToken) {
        let grace = self.ctx.settings.worker.shutdown_grace();
        let in_flight = tasks.len();
        let finished = tokio::select! {
            _ = async { while tasks.join_next().await.is_some() {} } => true,
            _ = tokio::time::sleep(grace) => false,
            _ = hard_stop.cancelled() => false,
        };
        if !finished {
            tracing::warn!(
                remaining = tasks.len(),
                in_flight,
                "shutdown grace over: abandoning in-flight sends and handing them back"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        let ids = std::mem::take(&mut *self.aborted.lock().unwrap());
        if !ids.is_empty() {
            if let Err(e) = release(&self.ctx.pool, &ids, &self.ctx.worker_id).await {
                tracing::error!(error = %e, count = ids.len(), "could not hand back aborted deliveries; their leases will expire and the rescuer re-queues them");
            }
        }
    }

    async fn claim(&self, want: usize) -> Result<Vec<Claimed>, sqlx::Error> {
        let held = self.holds.held(Utc::now());
        let lease_secs = self.ctx.settings.worker.lease_secs as f64;
        let mut rows: Vec<Claimed> = Vec::new();
        for priority in [Priority::Urgent, Priority::Bulk] {
            let left = want - rows.len();
            if left == 0 {
                break;
            }
            let mut got: Vec<Claimed> = sqlx::query_as(CLAIM_SQL)
                .bind(self.platform.as_str())
                .bind(priority.as_str())
                .bind(left as i64)
                .bind(&*self.ctx.worker_id)
                .bind(&held)
                .bind(lease_secs)
                .fetch_all(&self.ctx.pool)
                .await?;
            rows.append(&mut got);
        }
        if !rows.is_empty() {
            tracing::debug!(claimed = rows.len(), "claimed deliveries");
        }
        Ok(rows)
    }

    fn send_task(&self, row: Claimed) -> impl std::future::Future<Output = ()> + Send + 'static {
        let ctx = self.ctx.clone();
        let holds = self.holds.clone();
        let in_flight = self.in_flight.clone();
        let slot_freed = self.slot_freed.clone();
        let platform = self.platform;
        let guard = AbortGuard {
            id: Some(row.id),
            aborted: self.aborted.clone(),
        };
        async move {
            let mut guard = guard;
            let completion = process(&ctx, &holds, platform, row).await;
            in_flight.fetch_sub(1, Ordering::AcqRel);
            slot_freed.notify_one();
            if ctx.completions.send(completion).await.is_ok() {
                guard.id = None;
            }
        }
    }
}

/// Records a delivery whose task was dropped before its result was handed
/// to the completer.
struct AbortGuard {
    id: Option<i64>,
    aborted: Arc<Mutex<Vec<i64>>>,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.aborted.lock().unwrap().push(id);
        }
    }
}

/// Hands deliveries back to the queue without counting the attempt.
pub(crate) async fn release(pool: &PgPool, ids: &[i64], worker: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE pushrelay.deliveries
            SET state = 'pending', attempts = greatest(attempts - 1, 0), next_attempt_at = now(),
                lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
          WHERE id = ANY($1) AND lease_owner = $2 AND state = 'sending'",
    )
    .bind(ids)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

impl Completion {
    /// Settled without a send: the claimed attempt is given back.
    fn unsent(delivery_id: i64, state: &'static str, error: String) -> Completion {
        Completion {
            delivery_id,
            state,
            next_attempt_at: None,
            undo_attempt: true,
            provider_message_id: None,
            last_error: Some(error),
            attempt: None,
            invalidate: None,
        }
    }
}

/// Everything that happens to one claimed delivery, from the checks before
/// sending to the verdict. Never fails: every problem becomes a recorded
/// outcome.
async fn process(ctx: &Ctx, holds: &Holds, platform: Platform, row: Claimed) -> Completion {
    let settings = &ctx.settings;
    let now = Utc::now();
    let priority = Priority::parse(&row.priority).unwrap_or(Priority::Urgent);
    let schedule = settings.retry_schedule(priority);

    if let Some(at) = row.invalidated_at {
        let why = row
            .invalidated_reason
            .as_deref()
            .unwrap_or("no reason recorded");
        return Completion::unsent(
            row.id,
            "failed",
            format!("not sent: the device was invalidated at {at} ({why})"),
        );
    }
    if let Some(reason) = retry::expired_before_send(row.expires_at, now) {
        return Completion::unsent(row.id, "expired", reason);
    }
    if row.attempts as u32 > schedule.max_attempts {
        return Completion::unsent(
            row.id,
            "failed",
            format!("gave up: {} attempts already made", schedule.max_attempts),
        );
    }
    let (Some(app), Some(provider)) = (
        settings.apps.get(&row.app),
        ctx.providers.get(&row.app, platform),
    ) else {
        return Completion::unsent(
            row.id,
            "failed",
            format!(
                "app {:?} has no {platform} provider configured; add [apps.{}.{platform}] to config.toml",
                row.app, row.app
            ),
        );
    };
    let content = match (&row.template, &row.body) {
        (Some(name), _) => ctx
            .templates
            .render(name, &row.locale, &app.default_locale, &row.data),
        (None, Some(body)) => Ok(Rendered::inline(row.title.as_deref(), body, &row.data)),
        (None, None) => unreachable!("the notifications table requires a template or a body"),
    };
    let content = match content {
        Ok(c) => c,
        Err(e) => return Completion::unsent(row.id, "failed", e.to_string()),
    };
    let msg = Message {
        platform,
        token: &row.token,
        environment: Environment::parse(&row.environment).unwrap_or(Environment::Production),
        priority,
        collapse_key: row.collapse_key.as_deref(),
        expires_at: row.expires_at,
        content: &content,
    };

    let started_at = Utc::now();
    let clock = Instant::now();
    let timeout = settings.worker.send_timeout();
    let result = match tokio::time::timeout(timeout, provider.send(&msg)).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Transient {
            status: None,
            reason: format!("no answer within {} ms", timeout.as_millis()),
            retry_after: None,
        }),
    };
    let finished_at = started_at + clock.elapsed();
    let verdict = retry::decide(
        result.as_ref().err(),
        retry::Attempt {
            number: row.attempts as u32,
            schedule,
            expires_at: row.expires_at,
            now: finished_at,
            jitter: fastrand::f64(),
            config_pause: Duration::from_secs(settings.worker.config_error_pause_secs),
        },
    );

    let mut attempt = AttemptRecord {
        number: row.attempts,
        provider: provider.name(),
        started_at,
        finished_at,
        outcome: "delivered",
        status_code: None,
        reason: None,
    };
    match &result {
        Ok(a) => attempt.status_code = a.status.map(i32::from),
        Err(e) => {
            attempt.outcome = e.outcome();
            attempt.status_code = e.status().map(i32::from);
            attempt.reason = Some(e.reason().to_owned());
        }
    }
    let mut c = Completion {
        delivery_id: row.id,
        state: "pending",
        next_attempt_at: None,
        undo_attempt: false,
        provider_message_id: result
            .as_ref()
            .ok()
            .and_then(|a| a.provider_message_id.clone()),
        last_error: result.as_ref().err().map(ToString::to_string),
        attempt: None,
        invalidate: None,
    };
    match verdict {
        Verdict::Delivered => {
            holds.record_success(&row.app);
            c.state = "delivered";
        }
        Verdict::RetryAt(at) => {
            if let Change::Opened { until } = holds.record_transient(&row.app, finished_at) {
                metrics::counter!("pushrelay_provider_holds_total", "platform" => platform.as_str(), "reason" => "breaker").increment(1);
                tracing::warn!(app = %row.app, %platform, %until, "provider failing every send: holding this app's sends (circuit breaker open)");
            }
            c.next_attempt_at = Some(at);
        }
        Verdict::Failed(reason) => {
            c.state = "failed";
            c.last_error = Some(reason);
        }
        Verdict::Expired(reason) => {
            c.state = "expired";
            c.last_error = Some(reason);
        }
        Verdict::TokenDead(reason) => {
            c.state = "token_dead";
            let since = match &result {
                Err(SendError::TokenDead { since, .. }) => *since,
                _ => None,
            };
            c.invalidate = Some(Invalidation {
                device_id: row.device_id,
                reason: reason.clone(),
                since,
            });
            c.last_error = Some(reason);
        }
        Verdict::PauseProvider { until, reason } => {
            if let Change::Opened { until } = holds.hold(&row.app, until) {
                metrics::counter!("pushrelay_provider_holds_total", "platform" => platform.as_str(), "reason" => "config_error").increment(1);
                tracing::error!(app = %row.app, %platform, %until, %reason,
                    "the provider rejected this app's credentials: sends paused; fix the app's provider settings");
            }
            c.next_attempt_at = Some(until);
            c.undo_attempt = true;
        }
    }
    metrics::counter!("pushrelay_attempts_total", "platform" => platform.as_str(), "outcome" => attempt.outcome).increment(1);
    metrics::histogram!("pushrelay_send_duration_seconds", "platform" => platform.as_str())
        .record((finished_at - started_at).num_microseconds().unwrap_or(0) as f64 / 1e6);
    c.attempt = Some(attempt);
    c
}

/// Writes completions back in batches: whatever accumulated while the
/// previous batch was being written goes in the next, so the window between
/// "provider accepted" and "row updated" stays a few milliseconds under
/// light load and batches grow by themselves under heavy load.
pub(crate) struct Completer {
    pub pool: PgPool,
    pub worker_id: Arc<str>,
    pub rx: mpsc::Receiver<Completion>,
    pub max_batch: usize,
}

impl Completer {
    #[tracing::instrument(name = "completer", skip_all)]
    pub async fn run(mut self) {
        let mut buf = Vec::with_capacity(self.max_batch);
        loop {
            if self.rx.recv_many(&mut buf, self.max_batch).await == 0 {
                break; // every lane has finished and dropped its sender
            }
            let mut backoff = Duration::from_millis(50);
            while let Err(e) = write_batch(&self.pool, &self.worker_id, &buf).await {
                // Keep the results and try again: dropping them would
                // leave the deliveries leased until the rescuer re-sends.
                tracing::error!(error = %e, batch = buf.len(), retry_in = ?backoff, "recording results failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            buf.clear();
        }
    }
}

#[tracing::instrument(skip_all, fields(batch = batch.len()))]
async fn write_batch(pool: &PgPool, worker: &str, batch: &[Completion]) -> Result<(), sqlx::Error> {
    let n = batch.len();
    let mut ids = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut next_at = Vec::with_capacity(n);
    let mut undo = Vec::with_capacity(n);
    let mut pmids = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    for c in batch {
        ids.push(c.delivery_id);
        states.push(c.state);
        next_at.push(c.next_attempt_at);
        undo.push(i32::from(c.undo_attempt));
        pmids.push(c.provider_message_id.as_deref());
        errors.push(c.last_error.as_deref());
    }
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE pushrelay.deliveries d
            SET state = u.state, attempts = d.attempts - u.undo,
                next_attempt_at = COALESCE(u.next_at, d.next_attempt_at),
                provider_message_id = COALESCE(u.pmid, d.provider_message_id),
                last_error = u.err, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
           FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::int[], $5::text[], $6::text[])
                AS u(id, state, next_at, undo, pmid, err)
          WHERE d.id = u.id AND d.lease_owner = $7 AND d.state = 'sending'",
    )
    .bind(&ids)
    .bind(&states)
    .bind(&next_at)
    .bind(&undo)
    .bind(&pmids)
    .bind(&errors)
    .bind(worker)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated < n as u64 {
        tracing::warn!(
            lost = n as u64 - updated,
            "some leases expired before their results were recorded; another process may have sent those deliveries too"
        );
    }

    let m = batch.iter().filter(|c| c.attempt.is_some()).count();
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
            let Some(a) = &c.attempt else { continue };
            delivery.push(c.delivery_id);
            number.push(a.number);
            provider.push(a.provider);
            started.push(a.started_at);
            finished.push(a.finished_at);
            latency.push((a.finished_at - a.started_at).num_milliseconds() as i32);
            outcome.push(a.outcome);
            status.push(a.status_code);
            reason.push(a.reason.as_deref());
            retry_at.push(if c.state == "pending" {
                c.next_attempt_at
            } else {
                None
            });
            pmid.push(c.provider_message_id.as_deref());
        }
        sqlx::query(
            "INSERT INTO pushrelay.attempts
                (delivery_id, attempt, worker, provider, started_at, finished_at, latency_ms,
                 outcome, status_code, reason, retry_at, provider_message_id)
             SELECT u.delivery_id, u.attempt, $12, u.provider, u.started_at, u.finished_at, u.latency_ms,
                    u.outcome, u.status_code, u.reason, u.retry_at, u.pmid
               FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                           $6::int[], $7::text[], $8::int[], $9::text[], $10::timestamptz[], $11::text[])
                    AS u(delivery_id, attempt, provider, started_at, finished_at, latency_ms,
                         outcome, status_code, reason, retry_at, pmid)",
        )
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
        .await?;
    }

    let dead: Vec<&Invalidation> = batch.iter().filter_map(|c| c.invalidate.as_ref()).collect();
    if !dead.is_empty() {
        let ids: Vec<i64> = dead.iter().map(|d| d.device_id).collect();
        let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
        let since: Vec<Option<DateTime<Utc>>> = dead.iter().map(|d| d.since).collect();
        // APNs' 410 timestamp: a device that re-registered after the token
        // was reported invalid has a fresh registration; keep it.
        sqlx::query(
            "UPDATE pushrelay.devices v
                SET invalidated_at = now(), invalidated_reason = u.reason
               FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[]) AS u(id, reason, since)
              WHERE v.id = u.id AND v.invalidated_at IS NULL
                AND (u.since IS NULL OR v.updated_at <= u.since)",
        )
        .bind(&ids)
        .bind(&reasons)
        .bind(&since)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    for c in batch {
        metrics::counter!("pushrelay_deliveries_settled_total", "state" => c.state).increment(1);
    }
    Ok(())
}

//! A lane: one platform's sending, with its own budget of slots so a slow
//! or failing APNs never takes FCM's.
//!
//! A slot is an owned semaphore permit held by one delivery from the moment
//! it starts until the completer has *written* its result, so slots are
//! released on every path (panic, abort, shutdown) by dropping, and a slow
//! database fills the slots and stops the lane instead of piling up sent
//! results. Bulk deliveries also need one of a smaller set of bulk slots
//! (`bulk_share`), so an urgent delivery always finds a free slot at once.
//!
//! Deliveries arrive already leased: fresh ones from fan-out ([`Lane::push`]),
//! retries from the lane's own claim of due rows. Ready deliveries wait in
//! two queues, urgent always taken first. At shutdown the lane hands back
//! what it has not started, lets in-flight sends finish within the grace
//! period, then aborts the rest and hands them back too (try not counted).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures_util::FutureExt;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::breaker::{BreakerRule, Holds, Opened};
use super::executor::{Executor, Job};
use super::guard::GuardRule;
use super::heartbeat::{Fence, FENCE_RECHECK};
use crate::config::Settings;
use crate::model::{Environment, Platform, Priority};
use crate::store::deliveries::{self, ClaimedRetry, Completion};
use crate::store::holds::{self, Hold};
use crate::store::notifications::Content;

/// How often a lane reads the holds other processes recorded.
const HOLDS_SYNC: std::time::Duration = std::time::Duration::from_secs(1);

/// A result on its way to the database, with the slots it holds until then.
pub(crate) struct Finished {
    pub completion: Completion,
    pub _slots: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
}

/// What the lanes of one process share.
pub(crate) struct Shared {
    pub pool: sqlx::PgPool,
    pub settings: Arc<Settings>,
    pub executor: Executor,
    pub worker_id: Arc<str>,
    pub results: mpsc::Sender<Finished>,
    pub fence: Arc<Fence>,
    /// Per priority, woken when a lane has room for more fresh deliveries.
    pub room: [Notify; 2],
}

#[derive(Default)]
struct Ready {
    urgent: VecDeque<Job>,
    bulk: VecDeque<Job>,
}

impl Ready {
    fn queue(&mut self, p: Priority) -> &mut VecDeque<Job> {
        match p {
            Priority::Urgent => &mut self.urgent,
            Priority::Bulk => &mut self.bulk,
        }
    }
}

pub(crate) struct Lane {
    platform: Platform,
    shared: Arc<Shared>,
    holds: Holds,
    capacity: usize,
    bulk_capacity: usize,
    slots: Arc<Semaphore>,
    bulk_slots: Arc<Semaphore>,
    ready: Mutex<Ready>,
    arrived: Notify,
    /// Deliveries whose send task was dropped before its result reached the
    /// completer; handed back at shutdown.
    aborted: Arc<Mutex<Vec<i64>>>,
    /// `pushrelay_sends_in_flight{platform}`: slots held.
    in_flight: metrics::Gauge,
}

impl Lane {
    pub fn new(shared: Arc<Shared>, platform: Platform) -> Lane {
        let w = &shared.settings.worker;
        let lane = shared.settings.lanes.get(platform);
        let capacity = lane.concurrency as usize;
        let bulk_capacity = lane.bulk_slots();
        Lane {
            platform,
            holds: Holds::new(
                BreakerRule {
                    window: std::time::Duration::from_secs(w.breaker_window_secs),
                    min_answers: w.breaker_threshold,
                    failure_rate: w.breaker_failure_rate,
                    cooldown: std::time::Duration::from_secs(w.breaker_cooldown_secs),
                },
                GuardRule::default(),
            ),
            capacity,
            bulk_capacity,
            slots: Arc::new(Semaphore::new(capacity)),
            bulk_slots: Arc::new(Semaphore::new(bulk_capacity)),
            ready: Mutex::new(Ready::default()),
            arrived: Notify::new(),
            aborted: Arc::new(Mutex::new(Vec::new())),
            in_flight: metrics::gauge!("pushrelay_sends_in_flight", "platform" => platform.as_str()),
            shared,
        }
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// Whether fan-out should lease more fresh deliveries of `priority`
    /// for this lane: fewer are waiting than a quarter of the slots they
    /// may use. The queue only has to bridge one fan-out round trip; what
    /// waits beyond that holds memory and leases for nothing.
    pub fn wants(&self, priority: Priority) -> bool {
        let ready = self.ready.lock().unwrap();
        match priority {
            Priority::Urgent => ready.urgent.len() < self.capacity.div_ceil(4),
            Priority::Bulk => ready.bulk.len() < self.bulk_capacity.div_ceil(4),
        }
    }

    /// Queues a leased delivery.
    pub fn push(&self, job: Job) {
        let p = job.content.priority;
        self.ready.lock().unwrap().queue(p).push_back(job);
        self.arrived.notify_one();
    }

    /// The next delivery to start and its bulk slot, urgent first; bulk
    /// only with a bulk slot (`bulk` holds one already taken, if any).
    fn next(
        &self,
        bulk: &mut Option<OwnedSemaphorePermit>,
    ) -> Option<(Job, Option<OwnedSemaphorePermit>)> {
        let mut ready = self.ready.lock().unwrap();
        let job = match ready.urgent.pop_front() {
            Some(job) => Some((job, None)),
            None if ready.bulk.is_empty() => None,
            None => {
                let permit = bulk
                    .take()
                    .or_else(|| self.bulk_slots.clone().try_acquire_owned().ok())?;
                ready.bulk.pop_front().map(|job| (job, Some(permit)))
            }
        };
        let (urgent, bulk_left) = (ready.urgent.len(), ready.bulk.len());
        drop(ready);
        if let Some((j, _)) = &job {
            let p = j.content.priority;
            let (left, limit) = match p {
                Priority::Urgent => (urgent, self.capacity),
                Priority::Bulk => (bulk_left, self.bulk_capacity),
            };
            if left < limit.div_ceil(8) {
                self.shared.room[p as usize].notify_one();
            }
        }
        job
    }

    /// Slots held, for `pushrelay_sends_in_flight`: after every start, and
    /// whenever the lane goes idle (slots are released by the completer).
    fn report_in_flight(&self) {
        self.in_flight
            .set((self.capacity - self.slots.available_permits()) as f64);
    }

    fn bulk_waiting(&self) -> bool {
        !self.ready.lock().unwrap().bulk.is_empty()
    }

    /// Starts sends until `stop`; then drains (see module docs).
    #[tracing::instrument(name = "lane", skip_all, fields(platform = %self.platform))]
    pub async fn run(self: Arc<Self>, stop: CancellationToken, hard_stop: CancellationToken) {
        let poll = self.shared.settings.worker.poll_interval();
        let mut tasks = JoinSet::new();
        let mut bulk_permit: Option<OwnedSemaphorePermit> = None;
        let mut claim_due = true;
        let mut db_backoff = std::time::Duration::from_millis(100);
        let sync = tokio::spawn(self.clone().sync_holds(stop.clone()));
        'run: loop {
            while tasks.try_join_next().is_some() {}
            let slot = tokio::select! {
                p = self.slots.clone().acquire_owned() => p.expect("the lane's semaphore is never closed"),
                _ = stop.cancelled() => break,
            };
            let (job, bulk) = loop {
                if !self.shared.fence.ok() {
                    // No heartbeat yet, or a late one: another process may
                    // soon take our deliveries over; sending them now could
                    // double.
                    tokio::select! {
                        _ = tokio::time::sleep(FENCE_RECHECK) => continue,
                        _ = stop.cancelled() => break 'run,
                    }
                }
                if let Some(next) = self.next(&mut bulk_permit) {
                    break next;
                }
                if claim_due {
                    match self.claim_retries().await {
                        Ok(got) => {
                            db_backoff = std::time::Duration::from_millis(100);
                            claim_due = got.is_full;
                            if got.count > 0 {
                                continue;
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, retry_in = ?db_backoff, "claiming due retries failed");
                            tokio::select! {
                                _ = tokio::time::sleep(db_backoff) => {},
                                _ = stop.cancelled() => break 'run,
                            }
                            db_backoff = (db_backoff * 2).min(std::time::Duration::from_secs(5));
                            continue;
                        }
                    }
                }
                let bulk_waiting = bulk_permit.is_none() && self.bulk_waiting();
                self.report_in_flight();
                tokio::select! {
                    _ = self.arrived.notified() => {},
                    _ = tokio::time::sleep(poll) => claim_due = true,
                    p = self.bulk_slots.clone().acquire_owned(), if bulk_waiting => {
                        bulk_permit = Some(p.expect("the lane's semaphore is never closed"));
                    }
                    _ = stop.cancelled() => break 'run,
                }
            };
            self.start(&mut tasks, job, (slot, bulk));
            self.report_in_flight();
        }
        self.drain(tasks, hard_stop).await;
        let _ = sync.await;
    }

    /// Records the holds this lane opens (and restores what a burst the
    /// guard caught invalidated), and honours the holds other processes
    /// recorded: on every new hold, and at least every second.
    async fn sync_holds(self: Arc<Self>, stop: CancellationToken) {
        let s = &self.shared;
        // Read at once: a pause another process recorded applies from
        // this process's first sends.
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    _ = self.holds.wake.notified() => {},
                    _ = tokio::time::sleep(HOLDS_SYNC) => {},
                    _ = stop.cancelled() => {},
                }
            }
            first = false;
            for opened in self.holds.take_opened() {
                self.opened(opened).await;
            }
            if stop.is_cancelled() {
                return;
            }
            match holds::active(&s.pool, Some(self.platform)).await {
                Ok(active) => {
                    for h in active.iter().filter(|h| *h.worker != *s.worker_id) {
                        self.holds
                            .honour(&h.app, h.environment, h.paused_until, &h.kind);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read other processes' provider holds")
                }
            }
        }
    }

    async fn opened(&self, o: Opened) {
        let s = &self.shared;
        let hold = Hold {
            app: o.app.clone(),
            platform: self.platform,
            environment: o.environment,
            worker: s.worker_id.to_string(),
            kind: o.kind.as_str().to_owned(),
            reason: o.reason.clone(),
            hint: o.hint.clone(),
            paused_at: Utc::now(),
            paused_until: o.until,
        };
        if let Err(e) = holds::record(&s.pool, &hold).await {
            tracing::warn!(error = %e, app = %o.app, "could not record a provider hold; `pushrelay status` will not show it");
        }
        if o.casualties.is_empty() {
            return;
        }
        let devices: Vec<i64> = o.casualties.iter().map(|c| c.device_id).collect();
        let ids: Vec<i64> = o.casualties.iter().map(|c| c.delivery_id).collect();
        // The database's clock stamped the invalidations; allow for skew.
        let since = o.since - chrono::Duration::minutes(1);
        let why = format!("paused, device restored: {}", o.reason);
        let pool = s.pool.clone();
        let app = o.app;
        // Results already on their way to the completer are written a
        // moment later: restore again once they are.
        tokio::spawn(async move {
            let mut total = (0, 0);
            for wait in [0, 500, 3000] {
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                match holds::restore_burst(&pool, &devices, &ids, since, o.until, &why).await {
                    Ok((d, q)) => {
                        total.0 += d;
                        total.1 += q;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, %app, "could not restore the devices a misconfiguration burst invalidated")
                    }
                }
            }
            tracing::warn!(%app, devices = total.0, deliveries = total.1,
                "restored the devices invalidated during a burst of token rejections; their deliveries are pending again");
        });
    }

    fn start(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        job: Job,
        slots: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
    ) {
        let lane = self.clone();
        let guard = AbortGuard {
            id: Some(job.delivery_id),
            aborted: self.aborted.clone(),
        };
        tasks.spawn(async move {
            let mut guard = guard;
            let executor = &lane.shared.executor;
            let completion =
                match lane
                    .holds
                    .held_until(&job.content.app, job.environment, Utc::now())
                {
                    Some(until) => super::executor::Executor::held(&job, until),
                    None => AssertUnwindSafe(executor.execute(&lane.holds, lane.platform, &job))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| {
                            executor.panicked(&lane.holds, lane.platform, &job, panic)
                        }),
                };
            let finished = Finished {
                completion,
                _slots: slots,
            };
            if lane.shared.results.send(finished).await.is_ok() {
                guard.id = None;
            }
        });
    }

    /// Claims due retries into the ready queues: urgent first, bulk only as
    /// far as bulk slots are free, never more than free slots.
    async fn claim_retries(&self) -> Result<Claimed, sqlx::Error> {
        let s = &self.shared;
        let batch = s.settings.worker.dispatch_batch as usize;
        // The slot the caller holds is free too.
        let free = (self.slots.available_permits() + 1).min(batch);
        let held = self.holds.held(Utc::now());
        let mut got = Claimed::default();
        for (priority, limit) in [
            (Priority::Urgent, free),
            (
                Priority::Bulk,
                free.min(self.bulk_slots.available_permits()),
            ),
        ] {
            let limit = limit.saturating_sub(got.count);
            if limit == 0 {
                continue;
            }
            let rows = deliveries::claim_retries(
                &s.pool,
                self.platform,
                priority,
                limit,
                &s.worker_id,
                &held,
            )
            .await?;
            got.is_full |= rows.len() == limit;
            got.count += rows.len();
            for row in rows {
                self.push(job_of_retry(row));
            }
        }
        if got.count > 0 {
            tracing::debug!(claimed = got.count, "claimed due retries");
        }
        Ok(got)
    }

    async fn drain(&self, mut tasks: JoinSet<()>, hard_stop: CancellationToken) {
        let s = &self.shared;
        let unstarted: Vec<i64> = {
            let mut ready = self.ready.lock().unwrap();
            let Ready { urgent, bulk } = &mut *ready;
            urgent
                .drain(..)
                .chain(bulk.drain(..))
                .map(|j| j.delivery_id)
                .collect()
        };
        self.hand_back(&unstarted, "not started").await;
        let grace = s.settings.worker.shutdown_grace();
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
        let aborted = std::mem::take(&mut *self.aborted.lock().unwrap());
        self.hand_back(&aborted, "abandoned").await;
    }

    async fn hand_back(&self, ids: &[i64], what: &str) {
        if ids.is_empty() {
            return;
        }
        let s = &self.shared;
        if let Err(e) = deliveries::release(&s.pool, ids, &s.worker_id).await {
            tracing::error!(error = %e, count = ids.len(), what,
                "could not hand deliveries back; the rescuer of another process re-queues them once this one is gone");
        }
    }
}

#[derive(Default)]
struct Claimed {
    count: usize,
    /// A query returned all it was allowed: more may be due.
    is_full: bool,
}

fn job_of_retry(row: ClaimedRetry) -> Job {
    Job {
        delivery_id: row.id,
        device_id: row.device_id,
        token: row.token,
        environment: row.environment.unwrap_or(Environment::Production),
        locale: row.locale.unwrap_or_default(),
        endpoint_arn: row.sns_endpoint_arn,
        endpoint_stale: row.sns_endpoint_stale.unwrap_or(true),
        attempts: row.attempts,
        tries: row.tries,
        invalidated: row
            .invalidated_at
            .map(|at| (at, row.invalidated_reason.clone())),
        content: Arc::new(Content {
            id: row.notification_id,
            app: row.app,
            priority: row.priority,
            template: row.template,
            title: row.title,
            body: row.body,
            data: row.data.unwrap_or_default(),
            collapse_key: row.collapse_key,
            options: row.options.unwrap_or_default().into(),
            now_or_never: row.now_or_never,
            expires_at: row.expires_at,
        }),
        enqueued_at: row.created_at,
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

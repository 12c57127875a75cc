//! The worker: one process's share of the pipeline. It registers the
//! process, keeps its heartbeat, and runs the fan-out loop, one lane per
//! platform, the completer, the housekeeping loop and the LISTEN/NOTIFY
//! listener, and shuts them down in order.
//!
//! Two tokens control shutdown, like river's `Stop` and `StopAndCancel`:
//! `stop` ends fan-out and claiming and lets in-flight sends finish within
//! the grace period; `hard_stop` abandons them at once (they are handed
//! back). Either way every result already known is written and the
//! process deregistered before [`Worker::run`] returns.

pub mod breaker;
pub mod campaigns;
mod completer;
mod executor;
mod fanout;
pub mod guard;
mod heartbeat;
mod lane;
mod listener;
pub mod maintenance;
pub mod retry;

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::completer::Completer;
use self::executor::Executor;
use self::heartbeat::Fence;
use self::lane::{Lane, Shared};
use crate::config::Settings;
use crate::model::{Platform, Priority};
use crate::providers::Providers;
use crate::store::{notifications::Routes, workers};
use crate::templates::Templates;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot register this process in the database: {0}")]
    Register(#[source] sqlx::Error),
    #[error(
        "another process took this one for dead (no heartbeat for worker.lease_secs) and took \
         over its deliveries; stopped so nothing is sent twice. Check the database connection, \
         or raise worker.lease_secs"
    )]
    LeasesLost,
}

pub struct Worker {
    pool: PgPool,
    settings: Arc<Settings>,
    providers: Providers,
    templates: Arc<Templates>,
    id: Arc<str>,
}

impl Worker {
    pub fn new(
        pool: PgPool,
        settings: Arc<Settings>,
        providers: Providers,
        templates: Arc<Templates>,
    ) -> Worker {
        let id: Arc<str> = if settings.worker.id.is_empty() {
            default_worker_id().into()
        } else {
            settings.worker.id.as_str().into()
        };
        Worker {
            pool,
            settings,
            providers,
            templates,
            id,
        }
    }

    /// Names this process in leases and receipts.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `stop` is cancelled, then drains (see module docs).
    #[tracing::instrument(name = "worker", skip_all, fields(worker = %self.id))]
    pub async fn run(
        self,
        stop: CancellationToken,
        hard_stop: CancellationToken,
    ) -> Result<(), WorkerError> {
        let w = &self.settings.worker;
        workers::register(&self.pool, &self.id, &hostname(), std::process::id())
            .await
            .map_err(WorkerError::Register)?;

        // Ends with the heartbeat and housekeeping, after everything else.
        let aux_stop = CancellationToken::new();
        let lost = CancellationToken::new();
        let fence = Arc::new(Fence::new(w.lease()));
        let wake_fanout = [Arc::new(Notify::new()), Arc::new(Notify::new())];
        let mut aux = JoinSet::new();
        aux.spawn(heartbeat::run(
            self.pool.connect_options().as_ref().clone(),
            self.id.clone(),
            w.heartbeat_interval(),
            fence.clone(),
            lost.clone(),
            aux_stop.clone(),
        ));
        aux.spawn(listener::run(
            self.pool.clone(),
            wake_fanout.clone(),
            aux_stop.clone(),
        ));
        aux.spawn(share_fcm_quota(
            self.pool.clone(),
            self.providers.clone(),
            w.lease(),
            aux_stop.clone(),
        ));
        aux.spawn(maintenance::run(
            self.pool.clone(),
            w.lease(),
            fence.clone(),
            w.retention_days,
            self.providers.sns().clone(),
            aux_stop.clone(),
        ));

        let (tx, rx) = mpsc::channel(w.dispatch_batch as usize * 4);
        let completer = tokio::spawn(
            Completer {
                pool: self.pool.clone(),
                worker_id: self.id.clone(),
                rx,
                max_batch: w.dispatch_batch as usize * 2,
            }
            .run(),
        );
        let shared = Arc::new(Shared {
            pool: self.pool.clone(),
            settings: self.settings.clone(),
            executor: Executor {
                settings: self.settings.clone(),
                providers: self.providers.clone(),
                templates: self.templates.clone(),
            },
            worker_id: self.id.clone(),
            results: tx,
            fence,
            room: [Notify::new(), Notify::new()],
        });
        let routes = routes(&self.settings);
        let lanes: Vec<Arc<Lane>> = Platform::ALL
            .iter()
            .filter(|p| {
                self.settings
                    .apps
                    .values()
                    .any(|a| a.provider(**p).is_some())
            })
            .map(|p| Arc::new(Lane::new(shared.clone(), *p)))
            .collect();

        // Fan-out stops first, so nothing is handed to a lane that is
        // already draining; then the lanes; then the completer.
        let fanout_stop = CancellationToken::new();
        let lanes_stop = CancellationToken::new();
        let mut fanout = JoinSet::new();
        for (priority, wake) in [Priority::Urgent, Priority::Bulk]
            .into_iter()
            .zip(wake_fanout)
        {
            fanout.spawn(fanout::run(
                shared.clone(),
                lanes.clone(),
                routes.clone(),
                priority,
                wake,
                fanout_stop.clone(),
            ));
        }
        fanout.spawn(campaigns::run(shared.clone(), fanout_stop.clone()));
        let mut lane_tasks = JoinSet::new();
        for lane in lanes {
            lane_tasks.spawn(lane.run(lanes_stop.clone(), hard_stop.clone()));
        }
        drop(shared); // the lanes hold the only result senders now
        tracing::info!(
            apps = self.settings.apps.len(),
            templates = self.templates.len(),
            "pushrelay running"
        );

        tokio::select! {
            _ = stop.cancelled() => {},
            _ = lost.cancelled() => hard_stop.cancel(),
            Some(r) = fanout.join_next() => {
                tracing::error!(error = ?r.err(), "a fan-out loop ended unexpectedly; stopping");
            }
            Some(r) = lane_tasks.join_next() => {
                tracing::error!(error = ?r.err(), "a lane ended unexpectedly; stopping");
            }
        }
        fanout_stop.cancel();
        while fanout.join_next().await.is_some() {}
        lanes_stop.cancel();
        while let Some(r) = lane_tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a lane panicked");
            }
        }
        // Lanes are done: the completer writes what they left and exits.
        if let Err(e) = completer.await {
            tracing::error!(error = %e, "the completer panicked");
        }
        aux_stop.cancel();
        while aux.join_next().await.is_some() {}
        if lost.is_cancelled() {
            return Err(WorkerError::LeasesLost);
        }
        if let Err(e) = workers::deregister(&self.pool, &self.id).await {
            tracing::warn!(error = %e, "could not deregister; other processes will notice after worker.lease_secs");
        }
        tracing::info!("pushrelay stopped");
        Ok(())
    }
}

/// Which apps exist and which platforms each sends to, for fan-out.
fn routes(settings: &Settings) -> Routes {
    Routes {
        apps: settings.apps.keys().cloned().collect(),
        pairs: campaigns::context(settings).routes,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into())
}

/// Shares the FCM projects' quotas with the other processes on the
/// database, about once a second (a live process is one heard within a
/// lease; a stopped one deregisters at once).
async fn share_fcm_quota(
    pool: sqlx::PgPool,
    providers: Providers,
    lease: std::time::Duration,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = providers.sync_fcm_quota(&pool, lease).await {
            tracing::warn!(error = %e, "could not share the FCM quota with other processes; keeping the last share");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {},
            _ = stop.cancelled() => return,
        }
    }
}

fn default_worker_id() -> String {
    format!(
        "{}:{}:{:04x}",
        hostname(),
        std::process::id(),
        fastrand::u16(..)
    )
}

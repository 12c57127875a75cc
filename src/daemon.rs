//! The daemon: wires the fan-out loop, one dispatch lane per platform, the
//! completer, the housekeeping loop and the LISTEN/NOTIFY listener, and
//! shuts them down in order.
//!
//! Two tokens control shutdown, like river's `Stop` and `StopAndCancel`:
//! `stop` ends claiming and lets in-flight sends finish within the grace
//! period; `hard_stop` abandons them at once (they are handed back).
//! Either way every result already known is written before `run` returns.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::devices::Platform;
use crate::dispatch::{Completer, Ctx, Lane};
use crate::outbox;
use crate::providers::Providers;
use crate::templates::Templates;

const OUTBOX_CHANNEL: &str = "pushrelay_outbox";
const DELIVERIES_CHANNEL: &str = "pushrelay_deliveries";

pub struct Daemon {
    pool: PgPool,
    settings: Arc<Settings>,
    providers: Providers,
    templates: Arc<Templates>,
    worker_id: Arc<str>,
}

/// Wake-up signals shared by the listener and the loops.
#[derive(Default)]
struct Wakes {
    fanout: Notify,
    lanes: [Notify; 2],
}

impl Wakes {
    fn lanes(&self) {
        for l in &self.lanes {
            l.notify_one();
        }
    }
    fn all(&self) {
        self.fanout.notify_one();
        self.lanes();
    }
}

impl Daemon {
    pub fn new(
        pool: PgPool,
        settings: Arc<Settings>,
        providers: Providers,
        templates: Arc<Templates>,
    ) -> Daemon {
        let worker_id: Arc<str> = if settings.worker.id.is_empty() {
            default_worker_id().into()
        } else {
            settings.worker.id.as_str().into()
        };
        Daemon {
            pool,
            settings,
            providers,
            templates,
            worker_id,
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Runs until `stop` is cancelled, then drains (see module docs).
    #[tracing::instrument(name = "daemon", skip_all, fields(worker = %self.worker_id))]
    pub async fn run(self, stop: CancellationToken, hard_stop: CancellationToken) {
        let wakes = Arc::new(Wakes::default());
        let aux_stop = CancellationToken::new();
        let mut aux = JoinSet::new();
        aux.spawn(listen(self.pool.clone(), wakes.clone(), aux_stop.clone()));
        aux.spawn(crate::maintenance::run(
            self.pool.clone(),
            (self.settings.worker.lease() / 4).max(Duration::from_secs(1)),
            self.settings.worker.retention_days,
            aux_stop.clone(),
        ));

        let (tx, rx) = mpsc::channel(self.settings.worker.dispatch_batch as usize * 4);
        let completer = tokio::spawn(
            Completer {
                pool: self.pool.clone(),
                worker_id: self.worker_id.clone(),
                rx,
                max_batch: self.settings.worker.dispatch_batch as usize * 2,
            }
            .run(),
        );
        let ctx = Arc::new(Ctx {
            pool: self.pool.clone(),
            settings: self.settings.clone(),
            providers: self.providers.clone(),
            templates: self.templates.clone(),
            worker_id: self.worker_id.clone(),
            completions: tx,
        });
        let mut loops = JoinSet::new();
        for platform in Platform::ALL {
            if !self
                .settings
                .apps
                .values()
                .any(|a| a.provider(platform).is_some())
            {
                continue;
            }
            let lane = Lane::new(ctx.clone(), platform);
            let wakes = wakes.clone();
            let (stop, hard) = (stop.clone(), hard_stop.clone());
            loops.spawn(async move { lane.run(&wakes.lanes[platform.index()], stop, hard).await });
        }
        drop(ctx); // lanes hold the only completion senders now
        loops.spawn(fanout_loop(
            self.pool.clone(),
            self.settings.clone(),
            wakes.clone(),
            stop.clone(),
        ));
        tracing::info!(
            apps = self.settings.apps.len(),
            templates = self.templates.len(),
            "pushrelay running"
        );

        while let Some(r) = loops.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a loop panicked");
                stop.cancel();
            }
        }
        // Lanes are done: the completer drains what they left and exits.
        if let Err(e) = completer.await {
            tracing::error!(error = %e, "the completer panicked");
        }
        aux_stop.cancel();
        while aux.join_next().await.is_some() {}
        tracing::info!("pushrelay stopped");
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{:04x}", std::process::id(), fastrand::u16(..))
}

async fn fanout_loop(
    pool: PgPool,
    settings: Arc<Settings>,
    wakes: Arc<Wakes>,
    stop: CancellationToken,
) {
    let routes = outbox::Routes::from_settings(&settings);
    let batch = settings.worker.fanout_batch as i64;
    let poll = settings.worker.poll_interval();
    let mut backoff = Duration::from_millis(100);
    loop {
        if stop.is_cancelled() {
            return;
        }
        match outbox::fan_out(&pool, batch, &routes).await {
            Ok(stats) => {
                backoff = Duration::from_millis(100);
                metrics::counter!("pushrelay_notifications_fanned_out_total")
                    .increment(stats.notifications);
                metrics::counter!("pushrelay_deliveries_created_total").increment(stats.deliveries);
                if stats.deliveries > 0 {
                    wakes.lanes();
                }
                if stats.notifications as i64 == batch {
                    continue; // more may be due right now
                }
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?backoff, "fan-out failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        tokio::select! {
            _ = wakes.fanout.notified() => {},
            _ = tokio::time::sleep(poll) => {},
            _ = stop.cancelled() => return,
        }
    }
}

/// Turns NOTIFYs into wake-ups. sqlx's listener reconnects by itself; after
/// a reconnect everything is woken, since signals may have been missed.
async fn listen(pool: PgPool, wakes: Arc<Wakes>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "LISTEN connection failed; polling meanwhile");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        if let Err(e) = listener
            .listen_all([OUTBOX_CHANNEL, DELIVERIES_CHANNEL])
            .await
        {
            tracing::warn!(error = %e, "LISTEN failed; polling meanwhile");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {},
                _ = stop.cancelled() => return,
            }
            continue;
        }
        backoff = Duration::from_millis(200);
        wakes.all();
        loop {
            let msg = tokio::select! {
                m = listener.try_recv() => m,
                _ = stop.cancelled() => return,
            };
            match msg {
                Ok(Some(n)) if n.channel() == OUTBOX_CHANNEL => wakes.fanout.notify_one(),
                Ok(Some(_)) => wakes.lanes(),
                Ok(None) => {
                    tracing::warn!("LISTEN connection lost; reconnecting");
                    wakes.all();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                    wakes.all();
                    break;
                }
            }
        }
    }
}

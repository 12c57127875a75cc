//! Registration and heartbeat: how a live process keeps its leases.
//!
//! The heartbeat runs on a connection of its own, outside the pool, so a
//! pool exhausted by statements waiting on a lock never silences it: a
//! process that is alive keeps its deliveries however slow the database
//! is. If the heartbeat itself cannot get through for half a lease, the
//! [`Fence`] closes and the lanes stop starting sends, since another
//! process may soon take those deliveries over. If the registration is
//! gone (another process took this one for dead), its leases are gone too:
//! the worker stops at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::store::workers;

/// How soon a lane or fan-out looks again at a closed fence.
pub(crate) const FENCE_RECHECK: Duration = Duration::from_millis(50);

/// Whether the heartbeat is recent enough to start sends, and for how long
/// it has been getting through without a gap.
pub(crate) struct Fence {
    start: Instant,
    last_ok_ms: AtomicU64,
    /// Start of the current run of heartbeats without a gap.
    healthy_since_ms: AtomicU64,
    limit: Duration,
}

impl Fence {
    pub fn new(lease: Duration) -> Fence {
        Fence {
            start: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
            healthy_since_ms: AtomicU64::new(u64::MAX),
            limit: lease / 2,
        }
    }

    fn beat(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        if !self.ok() {
            self.healthy_since_ms.store(now, Ordering::Release);
        }
        self.last_ok_ms.store(now, Ordering::Release);
    }

    pub fn ok(&self) -> bool {
        let since = self.healthy_since_ms.load(Ordering::Acquire);
        let last = Duration::from_millis(self.last_ok_ms.load(Ordering::Acquire));
        since != u64::MAX && self.start.elapsed().saturating_sub(last) < self.limit
    }

    /// Heartbeats have been getting through for at least `d`. After a
    /// database outage every process's heartbeat is stale; only a process
    /// that has itself been heard for a whole lease since may conclude
    /// that another one, still silent, is gone.
    pub fn healthy_for(&self, d: Duration) -> bool {
        let since = self.healthy_since_ms.load(Ordering::Acquire);
        self.ok()
            && self
                .start
                .elapsed()
                .saturating_sub(Duration::from_millis(since))
                >= d
    }
}

/// Heartbeats `id` every `every` until `stop`; cancels `lost` if the
/// registration disappears.
pub(crate) async fn run(
    db: PgConnectOptions,
    id: std::sync::Arc<str>,
    every: Duration,
    fence: std::sync::Arc<Fence>,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let mut conn: Option<PgConnection> = None;
    loop {
        if conn.is_none() {
            match PgConnection::connect_with(&db).await {
                Ok(c) => conn = Some(c),
                Err(e) => tracing::warn!(error = %e, "heartbeat connection failed; retrying"),
            }
        }
        if let Some(c) = conn.as_mut() {
            match workers::heartbeat(c, &id).await {
                Ok(true) => fence.beat(),
                Ok(false) => {
                    tracing::error!(worker = %id,
                        "this process was taken for dead by another one and its deliveries were handed back; stopping");
                    lost.cancel();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed; reconnecting");
                    conn = None;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {},
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_closes_when_beats_stop() {
        let f = Fence::new(Duration::from_millis(100));
        assert!(!f.ok(), "closed before the first heartbeat");
        f.beat();
        assert!(f.ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!f.ok());
        assert!(!f.healthy_for(Duration::ZERO));
        f.beat();
        assert!(f.ok() && !f.healthy_for(Duration::from_millis(50)));
    }
}

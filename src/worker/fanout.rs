//! The fan-out loop: due notifications become deliveries, leased to this
//! process and handed straight to the lanes, so a first try costs no
//! separate claim.
//!
//! Each priority has its own loop, so urgent notifications are fanned out
//! as they come whatever was queued before them; bulk ones only while the
//! lanes want more (their bulk queue is short), so a campaign's backlog
//! stays in the database, where an alert that arrives later overtakes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::executor::Job;
use super::heartbeat::FENCE_RECHECK;
use super::lane::{Lane, Shared};
use crate::model::Priority;
use crate::store::notifications::{self, FannedOut, Routes};

/// Fans out one priority's notifications until `stop`. Each priority has
/// a loop (and a connection) of its own, so an urgent notification never
/// waits behind a bulk batch being fanned out.
pub(crate) async fn run(
    shared: Arc<Shared>,
    lanes: Vec<Arc<Lane>>,
    routes: Routes,
    priority: Priority,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let batch = shared.settings.worker.fanout_batch as usize;
    let poll = shared.settings.worker.poll_interval();
    let room = &shared.room[priority as usize];
    let mut backoff = Duration::from_millis(100);
    // Whether anything may be due: a batch that came back short says no
    // until a NOTIFY or the poll says otherwise.
    let mut maybe_due = true;
    let mut looked = Instant::now();
    loop {
        if stop.is_cancelled() {
            return;
        }
        if wake.notified().now_or_never().is_some() || looked.elapsed() >= poll {
            maybe_due = true;
            looked = Instant::now();
        }
        if !shared.fence.ok() {
            // No heartbeat yet, or a late one: lease nothing new.
            tokio::select! {
                _ = tokio::time::sleep(FENCE_RECHECK) => continue,
                _ = stop.cancelled() => return,
            }
        }
        if maybe_due && lanes.iter().all(|l| l.wants(priority)) {
            match notifications::fan_out(
                &shared.pool,
                priority,
                batch as i64,
                &routes,
                &shared.worker_id,
            )
            .await
            {
                Ok(rows) => {
                    backoff = Duration::from_millis(100);
                    maybe_due = rows.len() == batch;
                    hand_over(&lanes, rows);
                    if maybe_due {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, %priority, retry_in = ?backoff, "fan-out failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        tokio::select! {
            _ = wake.notified() => maybe_due = true,
            _ = room.notified() => {},
            _ = tokio::time::sleep_until((looked + poll).into()) => {},
            _ = stop.cancelled() => return,
        }
    }
}

/// Turns fanned-out rows into jobs on the lanes of their platforms.
fn hand_over(lanes: &[Arc<Lane>], rows: Vec<FannedOut>) {
    let notifications = rows.len() as u64;
    let mut deliveries = 0;
    for n in rows {
        deliveries += n.delivery_ids.len() as u64;
        let enqueued_at = Some(n.created_at);
        let content = Arc::new(n.content);
        let devices = n
            .delivery_ids
            .into_iter()
            .zip(n.device_ids)
            .zip(n.platforms)
            .zip(n.tokens)
            .zip(n.environments)
            .zip(n.locales)
            .zip(n.endpoint_arns)
            .zip(n.endpoints_stale);
        for (
            ((((((delivery_id, device_id), platform), token), environment), locale), arn),
            stale,
        ) in devices
        {
            let lane = lanes
                .iter()
                .find(|l| l.platform() == platform)
                .expect("fan-out only routes to platforms that have a lane");
            lane.push(Job {
                delivery_id,
                device_id,
                token: Some(token),
                environment,
                locale,
                endpoint_arn: arn,
                endpoint_stale: stale,
                attempts: 1,
                tries: 1,
                invalidated: None,
                content: content.clone(),
                enqueued_at,
            });
        }
    }
    metrics::counter!("pushrelay_notifications_fanned_out_total").increment(notifications);
    metrics::counter!("pushrelay_deliveries_created_total").increment(deliveries);
}

//! The fan-out loop: due notifications become deliveries, leased to this
//! process and handed straight to the lanes, so a first try costs no
//! separate claim.
//!
//! Urgent notifications are fanned out before bulk ones whatever was queued
//! first, and bulk ones only while the lanes want more (their bulk queue is
//! shorter than their bulk slots), so a campaign's backlog stays in the
//! database, where an alert that arrives later can overtake it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::executor::{Content, Job};
use super::lane::{Lane, Shared, FENCE_RECHECK};
use crate::model::Priority;
use crate::store::notifications::{self, FannedOut, Routes};

pub(crate) async fn run(
    shared: Arc<Shared>,
    lanes: Vec<Arc<Lane>>,
    routes: Routes,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let batch = shared.settings.worker.fanout_batch as usize;
    let poll = shared.settings.worker.poll_interval();
    let mut backoff = Duration::from_millis(100);
    // Per priority: whether anything may be due. A query that came back
    // short says no until a NOTIFY or the poll says otherwise, so an idle
    // priority costs no statement per batch of the other one.
    let mut maybe_due = [true, true];
    let mut looked = Instant::now();
    loop {
        if stop.is_cancelled() {
            return;
        }
        // A NOTIFY or the poll makes every priority worth a look again —
        // checked on every round, not only when idle, or a bulk backlog
        // whose batches keep coming back full would hide new urgent ones.
        if wake.notified().now_or_never().is_some() || looked.elapsed() >= poll {
            maybe_due = [true, true];
            looked = Instant::now();
        }
        if !shared.fence.ok() {
            // No heartbeat yet, or a late one: lease nothing new.
            tokio::select! {
                _ = tokio::time::sleep(FENCE_RECHECK) => continue,
                _ = stop.cancelled() => return,
            }
        }
        let mut more = false;
        for (i, priority) in [Priority::Urgent, Priority::Bulk].into_iter().enumerate() {
            if !maybe_due[i] || !lanes.iter().all(|l| l.wants(priority)) {
                continue;
            }
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
                    maybe_due[i] = rows.len() == batch;
                    more = maybe_due[i];
                    hand_over(&lanes, rows);
                    if more {
                        // A full batch: more may be due, and urgent ones go
                        // before any bulk.
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?backoff, "fan-out failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    more = true;
                    break;
                }
            }
        }
        if more {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => maybe_due = [true, true],
            _ = shared.room.notified() => {},
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
        let content = Arc::new(Content {
            notification_id: n.id,
            app: n.app,
            priority: n.priority,
            template: n.template,
            title: n.title,
            body: n.body,
            data: n.data,
            collapse_key: n.collapse_key,
            expires_at: n.expires_at,
        });
        let devices = n
            .delivery_ids
            .into_iter()
            .zip(n.device_ids)
            .zip(n.platforms)
            .zip(n.tokens)
            .zip(n.environments)
            .zip(n.locales);
        for (((((delivery_id, device_id), platform), token), environment), locale) in devices {
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
                attempts: 1,
                tries: 1,
                invalidated: None,
                content: content.clone(),
            });
        }
    }
    metrics::counter!("pushrelay_notifications_fanned_out_total").increment(notifications);
    metrics::counter!("pushrelay_deliveries_created_total").increment(deliveries);
}

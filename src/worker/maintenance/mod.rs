//! Housekeeping loops of every process: the [`rescuer`] hands back the
//! deliveries of processes that are gone, the [`cleaner`] deletes history
//! past the retention period, the [`sns_reaper`] deletes the SNS endpoints
//! of devices that are gone.

pub mod cleaner;
pub mod rescuer;
pub mod sns_reaper;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::heartbeat::Fence;
use crate::providers::sns::Endpoints;

/// Runs the rescuer every quarter lease (once this process has been heard
/// for a whole lease itself), the SNS reaper as often when any app sends
/// through SNS, and the cleaner every ten minutes.
pub(crate) async fn run(
    pool: PgPool,
    lease: Duration,
    fence: Arc<Fence>,
    retention_days: u32,
    sns: Endpoints,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval((lease / 4).max(Duration::from_millis(250)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let clean_every = Duration::from_secs(600);
    let sns_routes = sns.route_names();
    let mut last_clean: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.cancelled() => return,
        }
        if fence.healthy_for(lease) {
            rescuer::pass(&pool, lease).await;
        }
        if !sns.is_empty() {
            sns_reaper::pass(&pool, &sns, &sns_routes).await;
        }
        if retention_days > 0 && last_clean.is_none_or(|t| t.elapsed() >= clean_every) {
            last_clean = Some(tokio::time::Instant::now());
            cleaner::pass(&pool, retention_days, &stop).await;
        }
    }
}

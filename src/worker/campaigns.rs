//! The campaign pump: turns running campaigns' due targets into outbox
//! rows at each campaign's throttle, one step per campaign per pass (see
//! `store::campaigns`). Every process runs one; a campaign's row lock
//! decides which pumps it at a time, and its pace lives in that row, so
//! the throttle holds however many processes there are.

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::heartbeat::FENCE_RECHECK;
use super::lane::Shared;
use crate::config::Settings;
use crate::model::Platform;
use crate::store::campaigns::{self, Context, PumpLimits};

/// What the pump needs of the configuration.
pub fn context(settings: &Settings) -> Context {
    Context {
        routes: settings
            .apps
            .iter()
            .flat_map(|(name, app)| {
                Platform::ALL
                    .iter()
                    .filter(|p| app.provider(**p).is_some())
                    .map(move |p| format!("{name}/{p}"))
            })
            .collect(),
        quiet_hours: settings
            .apps
            .iter()
            .filter_map(|(name, app)| app.quiet_hours.map(|q| (name.clone(), (q.start, q.end))))
            .collect(),
    }
}

pub fn limits(settings: &Settings) -> PumpLimits {
    let c = &settings.campaigns;
    PumpLimits {
        batch: i64::from(c.batch),
        backlog: i64::from(c.backlog),
        evaluate_chunk: i64::from(c.evaluate_chunk),
    }
}

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let ctx = context(&shared.settings);
    let limits = limits(&shared.settings);
    let tick = shared.settings.campaigns.tick();
    let mut backoff = std::time::Duration::from_millis(200);
    loop {
        if stop.is_cancelled() {
            return;
        }
        if !shared.fence.ok() {
            tokio::select! {
                _ = tokio::time::sleep(FENCE_RECHECK) => continue,
                _ = stop.cancelled() => return,
            }
        }
        let pause = match campaigns::pump(&shared.pool, &ctx, limits, Utc::now()).await {
            Ok(p) => {
                backoff = std::time::Duration::from_millis(200);
                metrics::counter!("pushrelay_campaign_targets_queued_total").increment(p.queued);
                metrics::counter!("pushrelay_campaign_targets_expired_total").increment(p.expired);
                if p.more {
                    continue;
                }
                // A throttled campaign moves every few tens of ms at most;
                // an unthrottled one as fan-out drains its backlog.
                if p.queued > 0 {
                    tick.min(std::time::Duration::from_millis(50))
                } else {
                    tick
                }
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?backoff, "campaign pump failed");
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                backoff
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = stop.cancelled() => return,
        }
    }
}

//! Turns the outbox's NOTIFYs into wake-ups of both fan-out loops, on a connection of its
//! own. sqlx's listener reconnects by itself; after a reconnect fan-out is
//! woken anyway, since signals may have been missed. The fallback poll
//! covers scheduled sends and any signal lost in between.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const OUTBOX_CHANNEL: &str = "pushrelay_outbox";

pub(crate) async fn run(pool: PgPool, wake: [Arc<Notify>; 2], stop: CancellationToken) {
    let wake_all = || wake.iter().for_each(|w| w.notify_one());
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
        if let Err(e) = listener.listen(OUTBOX_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; polling meanwhile");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {},
                _ = stop.cancelled() => return,
            }
            continue;
        }
        backoff = Duration::from_millis(200);
        wake_all();
        loop {
            let msg = tokio::select! {
                m = listener.try_recv() => m,
                _ = stop.cancelled() => return,
            };
            match msg {
                Ok(Some(_)) => wake_all(),
                Ok(None) => {
                    tracing::warn!("LISTEN connection lost; reconnecting");
                    wake_all();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                    wake_all();
                    break;
                }
            }
        }
    }
}

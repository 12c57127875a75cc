//! The completer writes results back in batches: whatever accumulated
//! while the previous batch was being written goes in the next, so the
//! window between "provider accepted" and "row updated" stays a few
//! milliseconds under light load and batches grow by themselves under
//! heavy load. Each result holds its lane slots until its batch commits,
//! so a slow database slows sending instead of multiplying it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

use super::lane::Finished;
use crate::store::deliveries::{self, Completion};

pub(crate) struct Completer {
    pub pool: PgPool,
    pub worker_id: Arc<str>,
    pub rx: mpsc::Receiver<Finished>,
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
            let batch: Vec<&Completion> = buf.iter().map(|f| &f.completion).collect();
            let mut backoff = Duration::from_millis(50);
            loop {
                match deliveries::write_results(&self.pool, &self.worker_id, &batch).await {
                    Ok(applied) => {
                        if applied < batch.len() as u64 {
                            tracing::warn!(
                                lost = batch.len() as u64 - applied,
                                "some deliveries were taken over by another process before their results were recorded (this one was taken for dead); theirs stand"
                            );
                        }
                        break;
                    }
                    Err(e) => {
                        // Keep the results (and their slots) and try again:
                        // the lease stays ours while we heartbeat.
                        tracing::error!(error = %e, batch = batch.len(), retry_in = ?backoff, "recording results failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            for c in &batch {
                metrics::counter!("pushrelay_deliveries_settled_total", "state" => c.state.as_str())
                    .increment(1);
            }
            drop(batch);
            buf.clear(); // releases the slots
        }
    }
}

//! The rescuer: deliveries held by a process that stopped heartbeating for
//! a whole lease (crashed, hung, cut off from the database) go back to the
//! queue with a `lost` receipt, so support sees why a device may have
//! received a message twice. A live process is never robbed, however slow
//! its writes are.

use std::time::Duration;

use sqlx::PgPool;

use crate::store::workers;

const BATCH: i64 = 1000;

/// One pass: rescue until nothing is left (in batches).
pub async fn pass(pool: &PgPool, lease: Duration) {
    loop {
        match workers::rescue(pool, lease, BATCH, &[]).await {
            Ok(r) => {
                for gone in &r.dead {
                    tracing::warn!(worker = %gone, "a process stopped heartbeating; taking over its deliveries");
                }
                if r.rescued > 0 {
                    metrics::counter!("pushrelay_leases_rescued_total").increment(r.rescued as u64);
                    tracing::warn!(
                        rescued = r.rescued,
                        "re-queued deliveries of processes that are gone"
                    );
                }
                if r.rescued < BATCH {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "lease rescue failed; will try again");
                return;
            }
        }
    }
}

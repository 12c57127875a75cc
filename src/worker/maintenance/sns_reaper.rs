//! The SNS reaper: deletes the SNS platform endpoints of devices that are
//! gone — removed (API, CLI), their token dead (`EndpointDisabled`), or
//! erased — so SNS holds no endpoint for a device pushrelay no longer
//! sends to. Deleting an endpoint twice is harmless, so several daemons
//! may reap at once; one that fails stays listed for the next pass.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use sqlx::PgPool;

use crate::providers::sns::Endpoints;
use crate::store::sns::{self, Doomed};

/// Endpoints per pass, and SNS calls at a time.
const BATCH: i64 = 100;
const CONCURRENCY: usize = 8;
/// A call that takes longer waits for the next pass.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One pass over what is to be deleted, in batches while they come full.
/// `routes` are `endpoints`' names (`Endpoints::route_names`).
pub async fn pass(pool: &PgPool, endpoints: &Endpoints, routes: &[String]) {
    loop {
        let doomed = match sns::to_delete(pool, routes, BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "could not list SNS endpoints to delete; will try again");
                return;
            }
        };
        let listed = doomed.len();
        let done: Vec<Doomed> = stream::iter(doomed)
            .map(|d| async move {
                let sns = endpoints.get(&d.app, d.platform)?;
                match tokio::time::timeout(CALL_TIMEOUT, sns.delete_endpoint(&d.endpoint_arn)).await
                {
                    Ok(Ok(())) => Some(d),
                    Ok(Err(e)) => {
                        tracing::warn!(endpoint = %d.endpoint_arn, error = %e,
                            "could not delete an SNS endpoint; will try again");
                        None
                    }
                    Err(_) => None,
                }
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(|d| async move { d })
            .collect()
            .await;
        if !done.is_empty() {
            if let Err(e) = sns::deleted(pool, &done).await {
                tracing::error!(error = %e, "could not record deleted SNS endpoints; will delete them again");
                return;
            }
            metrics::counter!("pushrelay_sns_endpoints_deleted_total").increment(done.len() as u64);
            tracing::info!(
                deleted = done.len(),
                "deleted SNS endpoints of devices that are gone"
            );
        }
        // Stop on a short batch, or when nothing of a full one could be
        // deleted (SNS away): the next pass tries again.
        if listed < BATCH as usize || done.is_empty() {
            return;
        }
    }
}

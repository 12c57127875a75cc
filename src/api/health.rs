//! The operator's routes, unauthenticated (load balancers and Prometheus
//! carry no API key): `GET /healthz` (the process answers; no database),
//! `GET /readyz` (this process can do its job: the database answers, its
//! schema is the one this binary needs, no provider is paused — and if
//! not, which and why) and `GET /metrics` (Prometheus text).
//!
//! `/readyz` is polled every few seconds by every load balancer, so it is
//! three short queries under one 2 s bound, never a scan.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::ApiState;
use crate::store::{self, holds, DbError};
use crate::telemetry;

/// How long `/readyz` waits for the database: a balancer's probe times
/// out after a few seconds, and an answer (not ready) beats none.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checks: Vec<Check>,
}

/// One readiness check; `message` says what is wrong and what to do.
#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl Check {
    fn ok(name: &'static str) -> Check {
        Check {
            name,
            ok: true,
            message: None,
        }
    }

    fn failed(name: &'static str, message: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            message: Some(message.into()),
        }
    }
}

async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        checks: Vec::new(),
    })
}

async fn readyz(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let checks = match tokio::time::timeout(READY_TIMEOUT, checks(&state)).await {
        Ok(checks) => checks,
        Err(_) => unreachable_db(format!(
            "the database did not answer within {} s; check that PostgreSQL is up and reachable from this host (database.url)",
            READY_TIMEOUT.as_secs()
        )),
    };
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !ready {
        for c in checks.iter().filter(|c| !c.ok) {
            tracing::debug!(
                check = c.name,
                message = c.message.as_deref().unwrap_or(""),
                "not ready"
            );
        }
    }
    let health = Health {
        status: if ready { "ready" } else { "not_ready" },
        checks,
    };
    (status, axum::Json(health))
}

/// Database (reachable), schema (migrations current), providers (none
/// paused).
/// The schema check is the database's first round trip, so an unreachable
/// database is told apart from an old schema by how it failed.
async fn checks(state: &ApiState) -> Vec<Check> {
    let schema = match store::check_schema(&state.pool).await {
        Ok(()) => Check::ok("schema"),
        Err(e @ DbError::Outdated { .. }) => {
            // The holds table may not exist yet: nothing more to ask.
            return vec![
                Check::ok("database"),
                Check::failed("schema", e.to_string()),
                Check::failed("providers", "not checked: the schema is not current"),
            ];
        }
        Err(e) => {
            return unreachable_db(format!(
                "cannot query the database: {e}; check that PostgreSQL is up and reachable from this host (database.url)"
            ))
        }
    };
    let providers = match holds::active(&state.pool, None).await {
        Ok(active) if active.is_empty() => Check::ok("providers"),
        Ok(active) => Check::failed(
            "providers",
            active
                .iter()
                .map(|h| {
                    let hint = if h.hint.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", h.hint)
                    };
                    format!(
                        "{} {} {} paused until {}: {}{hint}",
                        h.app,
                        h.platform,
                        h.environment,
                        h.paused_until.format("%Y-%m-%dT%H:%M:%SZ"),
                        h.reason
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => {
            return unreachable_db(format!(
                "cannot query the database: {e}; check that PostgreSQL is up and reachable from this host (database.url)"
            ))
        }
    };
    vec![Check::ok("database"), schema, providers]
}

/// The database did not answer: the other checks could not run.
fn unreachable_db(message: String) -> Vec<Check> {
    let skipped = "not checked: the database did not answer";
    vec![
        Check::failed("database", message),
        Check::failed("schema", skipped),
        Check::failed("providers", skipped),
    ]
}

async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)],
        telemetry::scrape(&state.pool).await,
    )
}

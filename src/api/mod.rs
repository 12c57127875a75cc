//! The HTTP API, served by `pushrelay run` (`api.listen`): enqueue and
//! cancel notifications, register devices, read what happened, report
//! what devices saw, run campaigns, health and metrics. `openapi.yaml` at
//! the top of the repository describes every route; a test holds it and
//! [`ROUTES`] to each other and to the router.
//!
//! Campaigns and user lists (`campaigns`) are marketing's; a user list's
//! upload streams its body, bounded by `campaigns.max_upload_bytes`
//! instead of the body limit every other route has.
//!
//! Each route module owns its handlers and request/response types; this
//! one wires them with what every request gets: a request id
//! (`x-request-id`, taken from the caller or made), a tracing span with
//! the route and the key's public prefix, request metrics by route and
//! status, a body limit, and JSON errors for unknown routes and methods.

mod auth;
mod campaigns;
mod devices;
mod error;
mod extract;
mod health;
mod json;
mod notifications;
mod receipts;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

pub use self::auth::{Caller, Keys, Scope};
pub use self::error::ApiError;
pub use self::extract::{Path, Query};
pub use self::json::Json;
use crate::config::Settings;
use crate::templates::Templates;

/// Every route the API serves, as `(method, path)`; `openapi.yaml` must
/// describe exactly these (a test checks both against the router).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/notifications"),
    ("GET", "/v1/notifications"),
    ("POST", "/v1/notifications/batch"),
    ("GET", "/v1/notifications/{id}"),
    ("POST", "/v1/notifications/{id}/cancel"),
    ("PUT", "/v1/devices"),
    ("DELETE", "/v1/devices/{id}"),
    ("GET", "/v1/users/{user_id}/devices"),
    ("GET", "/v1/users/{user_id}/notifications"),
    ("DELETE", "/v1/users/{user_id}"),
    ("POST", "/v1/receipts"),
    ("POST", "/v1/campaigns"),
    ("GET", "/v1/campaigns"),
    ("POST", "/v1/campaigns/preview"),
    ("GET", "/v1/campaigns/{id}"),
    ("PATCH", "/v1/campaigns/{id}"),
    ("POST", "/v1/campaigns/{id}/pause"),
    ("POST", "/v1/campaigns/{id}/resume"),
    ("POST", "/v1/campaigns/{id}/cancel"),
    ("POST", "/v1/user-lists"),
    ("GET", "/v1/user-lists/{id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

#[derive(Debug, thiserror::Error)]
#[error("cannot serve the API on {addr}: {source}; change api.listen, or set it to \"\" to turn the API off")]
pub struct BindError {
    addr: String,
    #[source]
    source: std::io::Error,
}

/// What every handler can reach.
pub struct ApiState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub templates: Arc<Templates>,
    pub keys: Keys,
    pub outbox: notifications::Outbox,
    /// What campaigns need of the configuration (routes, quiet hours).
    pub campaigns: crate::store::campaigns::Context,
    /// The SNS routes, whose endpoints registration makes.
    pub sns: crate::providers::sns::Endpoints,
}

impl ApiState {
    /// Needs a tokio runtime (the outbox's writer task).
    pub fn new(pool: PgPool, settings: Arc<Settings>, templates: Arc<Templates>) -> ApiState {
        ApiState {
            keys: Keys::new(pool.clone(), &settings.api),
            outbox: notifications::Outbox::start(pool.clone(), &settings.api),
            campaigns: crate::worker::campaigns::context(&settings),
            sns: Default::default(),
            pool,
            settings,
            templates,
        }
    }
}

impl ApiState {
    /// 422 naming the app unless it is configured.
    pub fn known_app(&self, app: &str) -> Result<(), ApiError> {
        if self.settings.apps.contains_key(app) {
            return Ok(());
        }
        Err(ApiError::unprocessable(
            "unknown_app",
            format!(
                "unknown app {app:?}; configured apps are: {}",
                self.settings
                    .apps
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .field("app"))
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: Arc<ApiState>) -> Router {
    let limit = state.settings.api.max_body_bytes;
    let console = state.settings.console.enabled;
    Router::new()
        .merge(notifications::routes())
        .merge(devices::routes())
        .merge(receipts::routes())
        .merge(campaigns::routes())
        .merge(health::routes())
        .merge(if console {
            crate::console::router()
        } else {
            Router::new()
        })
        .route_layer(middleware::from_fn(observe))
        .fallback(move |uri: Uri| async move {
            if console && is_console(&uri) {
                return crate::console::not_found();
            }
            ApiError::not_found(
                "no_such_route",
                "there is no such route; openapi.yaml lists every route of the API",
            )
            .into_response()
        })
        .method_not_allowed_fallback(move |uri: Uri| async move {
            if console && is_console(&uri) {
                return crate::console::method_not_allowed();
            }
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; openapi.yaml lists the methods of each route",
            )
            .into_response()
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// The console is served beside the API, from the same state.
impl axum::extract::FromRef<Arc<ApiState>> for crate::console::Context {
    fn from_ref(state: &Arc<ApiState>) -> Self {
        crate::console::Context {
            pool: state.pool.clone(),
            settings: state.settings.clone(),
        }
    }
}

/// The support console's pages answer in HTML, the API in JSON.
fn is_console(uri: &Uri) -> bool {
    uri.path() == "/console" || uri.path().starts_with("/console/")
}

/// The answer to a body over `api.max_body_bytes`.
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is larger than this server accepts (api.max_body_bytes); send less per request, e.g. split a batch",
    )
}

/// A span per request (route, request id, and the key's prefix once it is
/// known), and the request metrics.
async fn observe(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = req.method().clone();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::info_span!("request", %method, route = %route, request_id = %id, key = tracing::field::Empty);
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    let elapsed = started.elapsed();
    metrics::counter!("pushrelay_api_requests_total", "route" => route.clone(), "method" => method.to_string(), "status" => status.as_str().to_owned())
        .increment(1);
    metrics::histogram!("pushrelay_api_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), ?elapsed, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), ?elapsed, "request");
        }
    });
    response
}

/// Binds `api.listen`; `None` when the API is turned off.
pub async fn bind(settings: &Settings) -> Result<Option<tokio::net::TcpListener>, BindError> {
    let addr = &settings.api.listen;
    if addr.is_empty() {
        return Ok(None);
    }
    tokio::net::TcpListener::bind(addr.as_str())
        .await
        .map(Some)
        .map_err(|source| BindError {
            addr: addr.clone(),
            source,
        })
}

/// Serves the API on `listener` until `stop`; requests already being
/// handled finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving the HTTP API");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

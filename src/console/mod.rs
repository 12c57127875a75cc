//! The support console: web pages, served under `/console/` by the same
//! listener as the API, that answer "did this customer get it, and if not,
//! why" without a shell — search, a user's devices and notifications, a
//! notification's timeline with a verdict in plain words, and an overview
//! of the queues, outcomes and paused providers.
//!
//! Pages are rendered on the server from templates compiled into the
//! binary; the browser gets HTML and one stylesheet, no script. Every
//! response carries a strict Content-Security-Policy (nothing but this
//! origin's stylesheet may load, no framing, forms post only here), and a
//! POST from another origin is refused: together with the SameSite=Strict
//! cookie that is the console's defence against cross-site requests.
//! Nothing can be changed from the console but the viewer's own session.

#[cfg(test)]
mod fixtures;
mod notification;
mod overview;
mod render;
mod search;
mod session;
pub mod timeline;
mod user;
pub mod verdict;

use std::sync::Arc;

use axum::extract::{FromRef, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use sqlx::PgPool;

pub use self::session::Viewer;
use crate::config::Settings;

/// No script, no frames, no other origin; forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("assets/console.css");

/// What the console's pages need: the database and the configuration.
/// The server that mounts the console provides it (`FromRef`), so the
/// console depends on nothing of the API it is served beside.
#[derive(Clone)]
pub struct Context {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
}

/// What a console page could not do.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::store::sessions::SessionError> for ConsoleError {
    fn from(e: crate::store::sessions::SessionError) -> Self {
        match e {
            crate::store::sessions::SessionError::Database(db) => ConsoleError::Database(db),
            other => ConsoleError::Internal(other.to_string()),
        }
    }
}

impl From<crate::store::api_keys::KeyError> for ConsoleError {
    fn from(e: crate::store::api_keys::KeyError) -> Self {
        match e {
            crate::store::api_keys::KeyError::Database(db) => ConsoleError::Database(db),
            other => ConsoleError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            ConsoleError::Database(e) => {
                tracing::warn!(error = %e, "a console page failed: database");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database unavailable",
                    "The database did not answer; try again in a moment. If this persists, \
                     the operators should check /readyz and the daemon's log.",
                )
            }
            ConsoleError::Internal(e) => {
                tracing::error!(error = %e, "a console page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something failed",
                    "This page failed; the daemon's log says why.",
                )
            }
        };
        problem(status, title, message)
    }
}

/// A page that says what went wrong (no session needed to read it).
fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    render::page(
        status,
        "problem.html",
        chrono_tz::UTC,
        context! { title, message, viewer => () },
    )
}

/// A page a signed-in viewer asked for that is not there — also what
/// another app's notification or user answers, so a key limited to some
/// apps learns nothing of the others.
fn missing(viewer: &Viewer, tz: chrono_tz::Tz, message: &str) -> Response {
    render::page(
        StatusCode::NOT_FOUND,
        "problem.html",
        tz,
        context! { title => "Not found", message, viewer => viewer.context() },
    )
}

/// The console's routes (full paths under `/console`, merged into the
/// API's router; the API's fallback answers unknown `/console/…` paths
/// with [`not_found`]).
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Context: FromRef<S>,
{
    let home = || async { Redirect::to("/console/overview") };
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route(
            "/console/sign-in",
            get(session::form).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/search", get(search::page))
        .route(
            "/console/overview",
            get(overview::page).layer(axum::Extension(overview::Cache::new())),
        )
        .route("/console/users/{user_id}", get(user::page))
        .route("/console/notifications/{id}", get(notification::page))
        .route("/console/assets/console.css", get(stylesheet))
        .layer(middleware::from_fn(same_origin_posts))
        .layer(middleware::map_response(|r| async { secure(r) }))
}

/// The answer to a console path that is no page.
pub fn not_found() -> Response {
    secure(problem(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such console page. Start from the overview or search.",
    ))
}

/// The answer to a method a console page does not take (everything is
/// read-only but signing in and out).
pub fn method_not_allowed() -> Response {
    secure(problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "Not allowed",
        "This console page cannot be changed; the console only reads.",
    ))
}

/// The security headers every console response carries.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

/// A form posted from another site is refused: browsers send `Origin` on
/// every POST, so one that names another host is a cross-site request.
/// Under `Referrer-Policy: no-referrer` Chromium sends `Origin: null` even
/// for the console's own forms; such a POST passes only when the browser
/// also says it came from this origin (`Sec-Fetch-Site`, which no page
/// can set).
async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !same_origin(req.headers()) {
        return problem(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was posted from another site; sign in from the console itself.",
        );
    }
    next.run(req).await
}

/// Whether a request comes from the console's own pages, by the rules
/// [`same_origin_posts`] gives.
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let fetch_site = header("sec-fetch-site");
    if fetch_site.is_some_and(|site| site != "same-origin") {
        return false;
    }
    match header(header::ORIGIN.as_str()) {
        // Not a browser's cross-site request (browsers send Origin on
        // every POST): a script, curl, a test.
        None => true,
        Some("null") => fetch_site == Some("same-origin"),
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, rest)| rest);
            origin_host.is_some() && origin_host == header(header::HOST.as_str())
        }
    }
}

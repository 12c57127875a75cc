//! Signing in and out of the console, and who is looking.
//!
//! Support signs in with an API key that has the `read` scope (or
//! `admin`); the key is exchanged for a session (see
//! [`crate::store::sessions`]) whose secret travels in an HttpOnly,
//! SameSite=Strict cookie scoped to `/console` — scripts cannot read it and
//! other sites cannot make the browser send it. A key limited to some apps
//! sees only those apps, exactly as over the API.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use serde::Deserialize;

use super::render::{page, percent};
use super::{ConsoleError, Context};
use crate::store::api_keys::{self, ApiKey, Scope};
use crate::store::sessions;

const COOKIE: &str = "pushrelay_console";
/// Where a sign-in goes when it was not sent from somewhere.
const HOME: &str = "/console/overview";

/// The signed-in key of a console request. Without a live session the
/// request is sent to the sign-in page, to come back afterwards.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub key: Arc<ApiKey>,
}

impl Viewer {
    /// Whether the key covers `app`.
    pub fn can_see(&self, app: &str) -> bool {
        self.apps().is_none_or(|apps| apps.iter().any(|a| a == app))
    }

    /// The apps the key is limited to; `None` for every app.
    pub fn apps(&self) -> Option<&[String]> {
        self.key.apps.as_deref()
    }

    /// What the page header shows: the key's name and public prefix.
    pub fn context(&self) -> minijinja::Value {
        context! { name => &self.key.name, prefix => &self.key.prefix, apps => self.apps() }
    }
}

fn secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

impl<S> FromRequestParts<S> for Viewer
where
    Context: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let state = Context::from_ref(state);
        if let Some(secret) = secret(&parts.headers) {
            match sessions::find(&state.pool, secret).await {
                Ok(Some(key)) => return Ok(Viewer { key: Arc::new(key) }),
                Ok(None) => {}
                Err(e) => return Err(ConsoleError::from(e).into_response()),
            }
        }
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(HOME);
        Err(Redirect::to(&format!("/console/sign-in?next={}", percent(here))).into_response())
    }
}

/// Only a console path is a place to return to after signing in: never
/// another site (`//evil.example`, `/\evil.example`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => HOME,
    }
}

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

pub async fn form(State(state): State<Context>, Query(q): Query<Next>) -> Response {
    sign_in_page(&state, StatusCode::OK, safe_next(q.next.as_deref()), None)
}

fn sign_in_page(
    state: &Context,
    status: StatusCode,
    next: &str,
    problem: Option<String>,
) -> Response {
    page(
        status,
        "sign_in.html",
        state.settings.console.tz(),
        context! { next, problem, viewer => () },
    )
}

#[derive(Deserialize)]
pub struct SignIn {
    key: String,
    next: Option<String>,
}

// Not Debug: the form carries a secret.
pub async fn sign_in(
    State(state): State<Context>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, ConsoleError> {
    let next = safe_next(form.next.as_deref());
    let Some(key) = api_keys::find(&state.pool, form.key.trim()).await? else {
        return Ok(sign_in_page(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            Some(
                "That API key is not valid: it is unknown or has been revoked. Check it, or ask an \
                 operator for a key with the read scope (pushrelay keys create --scopes read)."
                    .into(),
            ),
        ));
    };
    if !key.scopes.allows(Scope::Read) {
        return Ok(sign_in_page(
            &state,
            StatusCode::FORBIDDEN,
            next,
            Some(format!(
                "The API key {} lacks the read scope the console needs; sign in with a key that \
                 has it (pushrelay keys create --scopes read).",
                key.prefix
            )),
        ));
    }
    let console = &state.settings.console;
    let secret = sessions::create(&state.pool, &key, console.session()).await?;
    tracing::info!(key = %key.prefix, "signed in to the console");
    let secure = if behind_tls(&headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={secret}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        console.session().as_secs()
    );
    Ok(with_cookie(Redirect::to(next).into_response(), &cookie))
}

pub async fn sign_out(
    State(state): State<Context>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    if let Some(secret) = secret(&headers) {
        sessions::delete(&state.pool, secret).await?;
    }
    let secure = if behind_tls(&headers) { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    Ok(with_cookie(
        Redirect::to("/console/sign-in").into_response(),
        &cookie,
    ))
}

/// A proxy that terminated TLS says so; the cookie is then only ever sent
/// over TLS.
fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_returned_to() {
        assert_eq!(
            safe_next(Some("/console/users/u1?x=1")),
            "/console/users/u1?x=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil.example",
            "/console/\\evil",
            "/metrics",
            "/console/\nx",
        ] {
            assert_eq!(safe_next(Some(bad)), HOME, "{bad}");
        }
        assert_eq!(safe_next(None), HOME);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; pushrelay_console=s3cret; b=2"),
        );
        assert_eq!(secret(&h), Some("s3cret"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("pushrelay_console="),
        );
        assert_eq!(secret(&h), None);
    }
}

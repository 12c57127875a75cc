//! Search: the one box support types whatever the customer said into — a
//! notification id, an idempotency key, a user id, or the end of a device
//! token. One match opens its page; several are listed.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::render::{page as render, percent};
use super::{ConsoleError, Context, Viewer};
use crate::store::search::{self, SearchError, Single, MIN_TOKEN_END};

#[derive(Debug, Deserialize)]
pub struct Params {
    #[serde(default)]
    q: String,
}

pub async fn page(
    State(state): State<Context>,
    viewer: Viewer,
    Query(params): Query<Params>,
) -> Result<Response, ConsoleError> {
    let q = params.q.trim();
    let tz = state.settings.console.tz();
    if q.is_empty() {
        return Ok(render(
            StatusCode::OK,
            "search.html",
            tz,
            context! { viewer => viewer.context(), q, found => (), nothing => false, min_token_end => MIN_TOKEN_END },
        ));
    }
    let apps: Vec<String> = match viewer.apps() {
        Some(apps) => apps.to_vec(),
        None => state.settings.apps.keys().cloned().collect(),
    };
    let found = search::search(&state.pool, q, &apps)
        .await
        .map_err(|e| match e {
            SearchError::Database(db) => ConsoleError::Database(db),
        })?;
    match found.single() {
        Some(Single::Notification(id)) => {
            Ok(Redirect::to(&format!("/console/notifications/{id}")).into_response())
        }
        Some(Single::User(user)) => {
            Ok(Redirect::to(&format!("/console/users/{}", percent(&user))).into_response())
        }
        None => Ok(render(
            StatusCode::OK,
            "search.html",
            tz,
            context! { viewer => viewer.context(), q, nothing => found.is_empty(), found, min_token_end => MIN_TOKEN_END },
        )),
    }
}

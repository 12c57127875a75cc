//! A notification's page: what was asked, what happened on each device
//! attempt by attempt (the provider's answer, how long it took, when the
//! next try is due) and what the app reported back.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use minijinja::context;
use uuid::Uuid;

use super::render::page as render;
use super::timeline::{attempts, timeline};
use super::verdict::verdict;
use super::{missing, ConsoleError, Context, Viewer};
use crate::store::status::{self, StatusError};

pub async fn page(
    State(state): State<Context>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let tz = state.settings.console.tz();
    let absent = || {
        missing(
            &viewer,
            tz,
            &format!("No notification {id:?} in the apps this key can see."),
        )
    };
    let Ok(uuid) = Uuid::parse_str(id.trim()) else {
        return Ok(absent());
    };
    let n = match status::load(&state.pool, uuid).await {
        Ok(n) if viewer.can_see(&n.app) => n,
        Ok(_) | Err(StatusError::NotFound(_)) => return Ok(absent()),
        Err(StatusError::Database(e)) => return Err(ConsoleError::Database(e)),
        Err(e) => return Err(ConsoleError::Internal(e.to_string())),
    };
    Ok(render(
        StatusCode::OK,
        "notification.html",
        tz,
        context! {
            viewer => viewer.context(),
            verdict => verdict(&n, tz, Utc::now()),
            timeline => timeline(&n),
            attempts => attempts(&n),
            n,
        },
    ))
}

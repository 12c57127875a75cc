//! A user's page: every device (invalidated ones too, and why) and the
//! user's notifications, newest first, with what became of each on each
//! device — the first stop when a customer calls.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use super::render::page as render;
use super::{missing, ConsoleError, Context, Viewer};
use crate::store::notifications::{self, Cursor};
use crate::store::{devices, status};

/// Notifications per page.
const PAGE: u32 = 25;

#[derive(Debug, Deserialize)]
pub struct Params {
    cursor: Option<String>,
}

pub async fn page(
    State(state): State<Context>,
    viewer: Viewer,
    Path(user_id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ConsoleError> {
    let apps = viewer.apps();
    let tz = state.settings.console.tz();
    let cursor = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => match Cursor::decode(c) {
            Ok(c) => Some(c),
            Err(_) => {
                return Ok(missing(
                    &viewer,
                    tz,
                    "That page of notifications does not exist (the link is damaged); start from the user's first page.",
                ))
            }
        },
        None => None,
    };
    let devices = devices::list_for_user(&state.pool, &user_id, apps)
        .await
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let (rows, next) =
        notifications::list_for_user(&state.pool, &user_id, apps, cursor, PAGE).await?;
    if devices.is_empty() && rows.is_empty() && cursor.is_none() {
        return Ok(missing(
            &viewer,
            tz,
            &format!(
                "No user {user_id:?} has devices or notifications in the apps this key can see."
            ),
        ));
    }
    let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
    let notifications = status::load_many(&state.pool, &ids)
        .await
        .map_err(|e| match e {
            status::StatusError::Database(db) => ConsoleError::Database(db),
            other => ConsoleError::Internal(other.to_string()),
        })?;
    Ok(render(
        StatusCode::OK,
        "user.html",
        tz,
        context! {
            viewer => viewer.context(),
            user_id,
            devices,
            notifications,
            next => next.map(|c| c.encode()),
            first_page => cursor.is_none(),
        },
    ))
}

//! Campaigns over HTTP (scope `campaigns`, or `admin`): create, list,
//! read with live progress, preview an audience's reach, edit, pause,
//! resume and cancel; and user lists, uploaded as CSV.
//!
//! Everything here is `store::campaigns`; this module adds what HTTP
//! needs: the key's scope and apps (a key limited to some apps sees only
//! their campaigns and lists, and gets 404 for the others, as if they did
//! not exist), strict bodies, and the store's errors as 4xx answers naming
//! the field (see `From<CampaignError> for ApiError`).
//!
//! User ids given inline (`user_ids`) become a user list through the same
//! COPY path as an upload: for a campaign, a list named after it that it
//! keeps; for a preview, a list that lives only for the preview and is
//! deleted after it (as is a campaign's list when the campaign is then
//! refused), so no request leaves an unused list behind.
//!
//! An upload streams the request body straight into COPY, so its bound is
//! `campaigns.max_upload_bytes`, not `api.max_body_bytes`: a list of
//! millions of ids never sits in this process's memory.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::Utc;
use futures_util::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::{ApiError, ApiState, Caller, Json, Path, Query, Scope};
use crate::model::{CampaignState, Priority};
use crate::store::campaigns::{
    self, Campaign, CampaignError, Content, Edit, NewCampaign, Progress, Reach, Schedule, Segment,
    UserList,
};
use crate::store::devices::MAX_USER_ID_CHARS;
use crate::store::notifications::Cursor;

/// Inline user ids are written to COPY in chunks of about this many bytes.
const CSV_CHUNK: usize = 64 * 1024;

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/campaigns", post(create).get(list))
        .route("/v1/campaigns/preview", post(preview))
        .route("/v1/campaigns/{id}", get(show).patch(edit))
        .route("/v1/campaigns/{id}/pause", post(pause))
        .route("/v1/campaigns/{id}/resume", post(resume))
        .route("/v1/campaigns/{id}/cancel", post(cancel))
        .route("/v1/user-lists", post(upload))
        .route("/v1/user-lists/{id}", get(show_list))
}

/// `Some(None)` for an explicit `null`, `None` (by `default`) when absent:
/// a PATCH tells "clear it" from "leave it".
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCampaignBody {
    app: String,
    name: String,
    template: Option<String>,
    title: Option<String>,
    body: Option<String>,
    data: Option<serde_json::Value>,
    options: Option<serde_json::Value>,
    collapse_key: Option<String>,
    priority: Option<Priority>,
    ttl_seconds: Option<i64>,
    category: Option<String>,
    #[serde(default)]
    segment: Segment,
    user_list_id: Option<Uuid>,
    user_ids: Option<Vec<String>>,
    #[serde(default)]
    schedule: Schedule,
    throttle_per_minute: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    app: String,
    #[serde(default)]
    segment: Segment,
    user_list_id: Option<Uuid>,
    user_ids: Option<Vec<String>>,
    category: Option<String>,
    #[serde(default)]
    schedule: Schedule,
}

/// A PATCH: the fields given change; a content field given replaces that
/// field only (`null` clears it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    template: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    body: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "present")]
    options: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "present")]
    collapse_key: Option<Option<String>>,
    /// `null`: no throttle.
    #[serde(default, deserialize_with = "present")]
    throttle_per_minute: Option<Option<i64>>,
}

impl EditBody {
    fn changes_content(&self) -> bool {
        self.template.is_some()
            || self.title.is_some()
            || self.body.is_some()
            || self.data.is_some()
            || self.options.is_some()
            || self.collapse_key.is_some()
    }

    /// The campaign's content with this PATCH's fields put in.
    fn merged(&self, mut content: Content) -> Content {
        fn put<T: Clone>(field: &mut Option<T>, patch: &Option<Option<T>>) {
            if let Some(v) = patch {
                *field = v.clone();
            }
        }
        put(&mut content.template, &self.template);
        put(&mut content.title, &self.title);
        put(&mut content.body, &self.body);
        put(&mut content.collapse_key, &self.collapse_key);
        if let Some(d) = &self.data {
            content.data = d.clone().unwrap_or(serde_json::Value::Null);
        }
        if let Some(o) = &self.options {
            content.options = o.clone().unwrap_or(serde_json::Value::Null);
        }
        content
    }
}

/// A campaign as created: the campaign and what its audience reaches now.
#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    campaign: Campaign,
    reach: Reach,
}

/// A campaign as read: the campaign and how far it has come.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    campaign: Campaign,
    progress: Progress,
}

#[derive(Serialize)]
struct Page {
    items: Vec<Campaign>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    app: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    app: String,
    name: String,
}

/// 422 naming the template unless this pushrelay has it.
fn known_template(state: &ApiState, template: Option<&str>) -> Result<(), ApiError> {
    match template {
        Some(t) if !t.is_empty() && !state.templates.contains(t) => Err(ApiError::unprocessable(
            "unknown_template",
            format!(
                "unknown template {t:?}; add templates/{t}/<locale>.toml to this pushrelay's \
                 templates, or give an inline title and body"
            ),
        )
        .field("template")),
        _ => Ok(()),
    }
}

/// Inline user ids as the CSV an upload would be: a header line (so an id
/// that happens to be `user_id` is not taken for one), then every id
/// quoted. Refuses an id that could not be a user's, naming it.
fn csv_of(ids: &[String]) -> Result<Vec<Result<Bytes, Infallible>>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "user_ids is empty: an empty list reaches nobody; leave it out, or give at least one user id",
        )
        .field("user_ids"));
    }
    let mut chunks = Vec::new();
    let mut buf = BytesMut::with_capacity(CSV_CHUNK);
    buf.put_slice(b"user_id\n");
    for (i, id) in ids.iter().enumerate() {
        if id.trim().is_empty() || id.contains('\0') || id.chars().count() > MAX_USER_ID_CHARS {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!(
                    "user_ids[{i}]: a user id is 1 to {MAX_USER_ID_CHARS} characters without NUL \
                     characters"
                ),
            )
            .field(format!("user_ids[{i}]")));
        }
        buf.put_u8(b'"');
        buf.put_slice(id.replace('"', "\"\"").as_bytes());
        buf.put_slice(b"\"\n");
        if buf.len() >= CSV_CHUNK {
            chunks.push(Ok(buf.split().freeze()));
        }
    }
    chunks.push(Ok(buf.freeze()));
    Ok(chunks)
}

/// Uploads inline user ids as a list of `app`.
async fn upload_inline(
    state: &ApiState,
    app: &str,
    name: &str,
    ids: &[String],
) -> Result<UserList, ApiError> {
    let chunks = csv_of(ids)?;
    Ok(
        campaigns::upload_user_list(&state.pool, app, name, futures_util::stream::iter(chunks))
            .await?,
    )
}

/// The configured apps, for the store's check of a campaign's app.
fn apps(state: &ApiState) -> Vec<String> {
    state.settings.apps.keys().cloned().collect()
}

/// `POST /v1/campaigns`
async fn create(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Json(body): Json<NewCampaignBody>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Campaigns)?;
    caller.require_app(&state, &body.app)?;
    known_template(&state, body.template.as_deref())?;
    if body.user_ids.is_some() && body.user_list_id.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "give either user_list_id (an uploaded list) or user_ids (inline), not both",
        )
        .field("user_ids"));
    }
    let inline = match &body.user_ids {
        Some(ids) => Some(upload_inline(&state, &body.app, &body.name, ids).await?.id),
        None => None,
    };
    let new = NewCampaign {
        app: body.app,
        name: body.name,
        content: Content {
            template: body.template,
            title: body.title,
            body: body.body,
            data: body.data.unwrap_or_default(),
            options: body.options.unwrap_or_default(),
            collapse_key: body.collapse_key,
        },
        priority: body.priority,
        ttl_seconds: body.ttl_seconds,
        category: body.category,
        segment: body.segment,
        user_list_id: inline.or(body.user_list_id),
        schedule: body.schedule,
        throttle_per_minute: body.throttle_per_minute,
        created_by: Some(format!("{} ({})", caller.key.name, caller.key.prefix)),
    };
    let created = campaigns::create(
        &state.pool,
        &state.campaigns,
        &apps(&state),
        &new,
        Utc::now(),
    )
    .await;
    let (campaign, reach) = match created {
        Ok(c) => c,
        Err(e) => {
            if let Some(list) = inline {
                // Best effort: a list left behind is harmless, only unused.
                if let Err(d) = campaigns::delete_user_list(&state.pool, list).await {
                    tracing::warn!(error = %d, %list, "could not delete the refused campaign's user list");
                }
            }
            return Err(e.into());
        }
    };
    tracing::info!(campaign = %campaign.id, app = %campaign.app, devices = reach.devices, "campaign created");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/campaigns/{}", campaign.id))],
        axum::Json(Created { campaign, reach }),
    )
        .into_response())
}

/// `POST /v1/campaigns/preview`
async fn preview(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Json(body): Json<PreviewBody>,
) -> Result<axum::Json<Reach>, ApiError> {
    caller.require(Scope::Campaigns)?;
    caller.require_app(&state, &body.app)?;
    body.segment.check()?;
    if body.user_ids.is_some() && body.user_list_id.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "give either user_list_id (an uploaded list) or user_ids (inline), not both",
        )
        .field("user_ids"));
    }
    if body.segment == Segment::default() && body.user_list_id.is_none() && body.user_ids.is_none()
    {
        return Err(CampaignError::EmptyAudience.into());
    }
    if let Some(list) = body.user_list_id {
        let app = std::slice::from_ref(&body.app);
        if campaigns::user_list(&state.pool, list, Some(app))
            .await?
            .is_none()
        {
            return Err(CampaignError::UnknownUserList(list).into());
        }
    }
    let now = Utc::now();
    let when = body.schedule.resolve(now)?;
    let temporary = match &body.user_ids {
        Some(ids) => Some(upload_inline(&state, &body.app, "preview", ids).await?.id),
        None => None,
    };
    let reach = campaigns::preview(
        &state.pool,
        &state.campaigns,
        &body.app,
        &body.segment,
        temporary.or(body.user_list_id),
        body.category.as_deref(),
        when,
        now,
    )
    .await;
    if let Some(list) = temporary {
        if let Err(e) = campaigns::delete_user_list(&state.pool, list).await {
            tracing::warn!(error = %e, %list, "could not delete a preview's user list");
        }
    }
    Ok(axum::Json(reach?))
}

/// `GET /v1/campaigns`
async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Page>, ApiError> {
    caller.require(Scope::Campaigns)?;
    let (limit, after) = super::extract::page(q.limit, q.cursor.as_deref())?;
    if let Some(app) = &q.app {
        caller.require_app(&state, app)?;
    }
    // One more than the page: whether there is a next one.
    let mut items = campaigns::list(
        &state.pool,
        q.app.as_deref(),
        caller.apps(),
        after.map(|c| (c.created_at, c.id)),
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|c| {
            Cursor {
                created_at: c.created_at,
                id: c.id,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(axum::Json(Page { items, next_cursor }))
}

/// The campaign if the key may see it; 404 otherwise.
async fn visible(state: &ApiState, caller: &Caller, id: Uuid) -> Result<Campaign, ApiError> {
    campaigns::get(&state.pool, id, caller.apps())
        .await?
        .ok_or_else(|| CampaignError::NotFound(id).into())
}

/// `GET /v1/campaigns/{id}`
async fn show(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Shown>, ApiError> {
    caller.require(Scope::Campaigns)?;
    let campaign = visible(&state, &caller, id).await?;
    let progress = campaigns::progress(&state.pool, id, Utc::now()).await?;
    Ok(axum::Json(Shown { campaign, progress }))
}

/// `PATCH /v1/campaigns/{id}`
async fn edit(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<EditBody>,
) -> Result<axum::Json<Campaign>, ApiError> {
    caller.require(Scope::Campaigns)?;
    if let Some(t) = &body.template {
        known_template(&state, t.as_deref())?;
    }
    // The store replaces the content as a whole: the fields not in the
    // PATCH come from the campaign as it is (the store refuses any content
    // change once sending has started, under the campaign's lock).
    let content = if body.changes_content() {
        Some(body.merged(visible(&state, &caller, id).await?.content))
    } else {
        None
    };
    let edit = Edit {
        name: body.name,
        content,
        throttle_per_minute: body.throttle_per_minute,
    };
    Ok(axum::Json(
        campaigns::edit(&state.pool, id, caller.apps(), &edit).await?,
    ))
}

/// `POST /v1/campaigns/{id}/pause`
async fn pause(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Campaign>, ApiError> {
    caller.require(Scope::Campaigns)?;
    Ok(axum::Json(
        campaigns::pause(&state.pool, id, caller.apps()).await?,
    ))
}

/// `POST /v1/campaigns/{id}/resume`
async fn resume(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Campaign>, ApiError> {
    caller.require(Scope::Campaigns)?;
    Ok(axum::Json(
        campaigns::resume(&state.pool, id, caller.apps()).await?,
    ))
}

/// `POST /v1/campaigns/{id}/cancel`
async fn cancel(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Campaign>, ApiError> {
    caller.require(Scope::Campaigns)?;
    // A completed campaign has handed every target over: there is nothing
    // of it left to cancel, and it stays `completed` (the store would
    // relabel it).
    let c = visible(&state, &caller, id).await?;
    if c.state == CampaignState::Completed {
        return Err(CampaignError::Finished {
            id,
            state: c.state,
            action: "cancelled",
        }
        .into());
    }
    Ok(axum::Json(
        campaigns::cancel(&state.pool, id, caller.apps()).await?,
    ))
}

/// The upload's body went over `campaigns.max_upload_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("the upload is larger than campaigns.max_upload_bytes")]
struct TooLarge;

fn upload_too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!(
            "the user list is larger than this server accepts ({max} bytes, \
             campaigns.max_upload_bytes); split it, or ask the operator to raise the limit"
        ),
    )
}

/// `POST /v1/user-lists?app=..&name=..` (body: CSV, one user id a line)
async fn upload(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(q): Query<UploadQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    caller.require(Scope::Campaigns)?;
    caller.require_app(&state, &q.app)?;
    let csv = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let mime = v.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("text/csv")
        });
    if !csv {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the user list as CSV (one user id a line, an optional `user_id` header) \
             with Content-Type: text/csv",
        ));
    }
    let max = state.settings.campaigns.max_upload_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(upload_too_large(max));
    }
    // Counted as it streams: a body without a length is bounded too.
    let over = Arc::new(AtomicBool::new(false));
    let flag = over.clone();
    let mut seen: u64 = 0;
    let body = req.into_body().into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(|e| e.to_string())?;
        seen += chunk.len() as u64;
        if seen > max {
            flag.store(true, Ordering::Relaxed);
            return Err(TooLarge.to_string());
        }
        Ok(chunk)
    });
    match campaigns::upload_user_list(&state.pool, &q.app, &q.name, body).await {
        Ok(list) => Ok((
            StatusCode::CREATED,
            [(header::LOCATION, format!("/v1/user-lists/{}", list.id))],
            axum::Json(list),
        )
            .into_response()),
        Err(_) if over.load(Ordering::Relaxed) => Err(upload_too_large(max)),
        // An id too long for the members' index: no device's user id is
        // that long, so it is a wrong column or a broken file.
        Err(CampaignError::Database(sqlx::Error::Database(db)))
            if db.code().as_deref() == Some("54000") =>
        {
            Err(ApiError::bad_request(
                "invalid_csv",
                format!(
                    "the user list must be CSV with one user id per line: a line is far longer \
                     than a user id ({MAX_USER_ID_CHARS} characters at most); check the file"
                ),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /v1/user-lists/{id}`
async fn show_list(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<UserList>, ApiError> {
    caller.require(Scope::Campaigns)?;
    campaigns::user_list(&state.pool, id, caller.apps())
        .await?
        .map(axum::Json)
        .ok_or_else(|| {
            ApiError::not_found(
                "user_list_not_found",
                format!("no user list {id} (or not one of the apps this API key may see)"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_ids_become_quoted_csv_after_a_header() {
        let ids = vec!["user_id".to_owned(), "a,\"b\"".to_owned()];
        let chunks = csv_of(&ids).unwrap();
        let text: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "user_id\n\"user_id\"\n\"a,\"\"b\"\"\"\n"
        );
        let e = csv_of(&["ok".into(), " ".into()]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("user_ids[1]"));
        assert_eq!(csv_of(&[]).unwrap_err().field.as_deref(), Some("user_ids"));
    }

    #[test]
    fn a_patch_tells_null_from_absent() {
        let body: EditBody =
            serde_json::from_str(r#"{"title": null, "body": "new", "throttle_per_minute": null}"#)
                .unwrap();
        assert_eq!(body.throttle_per_minute, Some(None));
        let merged = body.merged(Content {
            title: Some("old".into()),
            body: Some("old".into()),
            collapse_key: Some("kept".into()),
            ..Content::default()
        });
        assert_eq!(merged.title, None);
        assert_eq!(merged.body.as_deref(), Some("new"));
        assert_eq!(merged.collapse_key.as_deref(), Some("kept"));
        let none: EditBody = serde_json::from_str("{}").unwrap();
        assert!(!none.changes_content() && none.throttle_per_minute.is_none());
    }
}

//! Devices and users: `PUT /v1/devices` (register or update a token),
//! `DELETE /v1/devices/{id}`, `GET /v1/users/{user_id}/devices` and
//! `DELETE /v1/users/{user_id}` (erasure).
//!
//! Registration is an upsert on app + platform + token, so a mobile app can
//! send it on every launch: 201 the first time, 200 after. A field left out
//! keeps what the device had (a launch that only knows the token does not
//! wipe the user's consent); tags, attributes and consent start over when
//! the token moves to another user. Tokens are masked in every answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, put};
use axum::Router;
use serde::Deserialize;

use super::{ApiError, ApiState, Caller, Json, Path, Query, Scope};
use crate::model::{Environment, Platform};
use crate::store::devices::{self, DeviceError, Registration};
use crate::store::users;

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/devices", put(register))
        .route("/v1/devices/{id}", delete(remove))
        .route("/v1/users/{user_id}/devices", axum::routing::get(list))
        .route("/v1/users/{user_id}", delete(erase))
}

/// The reason a device removed through the API shows in support's views.
const REMOVED: &str = "removed through the API";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceBody {
    app: String,
    user_id: String,
    platform: Platform,
    token: String,
    environment: Option<Environment>,
    locale: Option<String>,
    timezone: Option<String>,
    app_version: Option<String>,
    tags: Option<Vec<String>>,
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// Category → consented; anything but a boolean is refused by type.
    consent: Option<BTreeMap<String, bool>>,
    /// The token this one replaces, when the platform issued a new one.
    previous_token: Option<String>,
}

/// `?app=`: one app instead of every app the key may see.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFilter {
    app: Option<String>,
}

impl From<DeviceError> for ApiError {
    fn from(e: DeviceError) -> ApiError {
        match e {
            DeviceError::InvalidToken { .. } => ApiError::unprocessable(
                "invalid_token",
                format!("{e}; send the token exactly as the platform's SDK returned it"),
            )
            .field("token"),
            DeviceError::Invalid { ref field, .. } => {
                let field = field.clone();
                ApiError::unprocessable("invalid_field", e.to_string()).field(field)
            }
            DeviceError::NotFound(id) => ApiError::not_found(
                "device_not_found",
                format!(
                    "no device with id {id} that this API key may see; use the id PUT /v1/devices returned"
                ),
            ),
            DeviceError::Database(e) => e.into(),
        }
    }
}

/// The apps a request covers: the one `?app=` names (it must be
/// configured and the key's), or every app the key may see (`None`: all).
fn apps_of(
    caller: &Caller,
    state: &ApiState,
    filter: AppFilter,
) -> Result<Option<Vec<String>>, ApiError> {
    match filter.app {
        Some(app) => {
            caller.require_app(state, &app)?;
            Ok(Some(vec![app]))
        }
        None => Ok(caller.apps().map(<[String]>::to_vec)),
    }
}

async fn register(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Json(body): Json<DeviceBody>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Devices)?;
    caller.require_app(&state, &body.app)?;
    let app = &state.settings.apps[&body.app];
    if app.provider(body.platform).is_none() {
        return Err(ApiError::unprocessable(
            "platform_not_configured",
            format!(
                "app {:?} sends to no {} devices: it has no {} provider configured ([apps.{}.{}] in config.toml)",
                body.app, body.platform, body.platform, body.app, body.platform
            ),
        )
        .field("platform"));
    }
    let mut registered = devices::register_device(
        &state.pool,
        &Registration {
            environment: body.environment,
            locale: body.locale.as_deref(),
            timezone: body.timezone.as_deref(),
            app_version: body.app_version.as_deref(),
            tags: body.tags.as_deref(),
            attributes: body.attributes.as_ref(),
            consent: body.consent.as_ref(),
            previous_token: body.previous_token.as_deref(),
            ..Registration::new(&body.app, &body.user_id, body.platform, &body.token)
        },
    )
    .await?;
    registered.device.sns_endpoint_arn = state
        .sns
        .after_registration(&state.pool, &registered.device)
        .await;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(registered.device)).into_response())
}

async fn remove(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Devices)?;
    devices::remove_in(&state.pool, id, caller.apps(), REMOVED).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(user_id): Path<String>,
    Query(filter): Query<AppFilter>,
) -> Result<Response, ApiError> {
    caller.require_any(&[Scope::Devices, Scope::Read])?;
    let apps = apps_of(&caller, &state, filter)?;
    let devices = devices::list_for_user(&state.pool, &user_id, apps.as_deref()).await?;
    Ok(axum::Json(serde_json::json!({ "devices": devices })).into_response())
}

async fn erase(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(user_id): Path<String>,
    Query(filter): Query<AppFilter>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let apps = apps_of(&caller, &state, filter)?;
    let erased = users::erase(&state.pool, &user_id, apps.as_deref())
        .await
        .map_err(|users::UserError::Database(e)| ApiError::from(e))?;
    // The user id is not logged: the point of the request is to forget it.
    tracing::info!(
        devices = erased.devices,
        notifications = erased.notifications,
        deliveries = erased.deliveries,
        "erased a user"
    );
    Ok(axum::Json(erased).into_response())
}

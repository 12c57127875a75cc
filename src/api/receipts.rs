//! `POST /v1/receipts`: the app on a device reports that a notification
//! was received, displayed or opened. One report per call (apps send them
//! as they happen); a repeat of the same delivery and event is answered
//! 200 and changes nothing, a new one 201.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiError, ApiState, Caller, Json, Scope};
use crate::store::receipts::{self, Event, ReceiptError, Report};

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/v1/receipts", post(report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptBody {
    notification_id: Uuid,
    device_id: i64,
    event: Event,
    occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct ReceiptAnswer {
    notification_id: Uuid,
    device_id: i64,
    delivery_id: i64,
    event: Event,
    occurred_at: DateTime<Utc>,
}

impl From<ReceiptError> for ApiError {
    fn from(e: ReceiptError) -> ApiError {
        match e {
            ReceiptError::NoDelivery { .. } => ApiError::not_found(
                "delivery_not_found",
                format!(
                    "{e} that this API key may see; send the notification's pushrelay_id from the payload \
                     and the device id PUT /v1/devices returned"
                ),
            ),
            ReceiptError::Database(e) => e.into(),
        }
    }
}

async fn report(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Json(body): Json<ReceiptBody>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Devices)?;
    let recorded = receipts::record(
        &state.pool,
        &Report {
            notification_id: body.notification_id,
            device_id: body.device_id,
            event: body.event,
            occurred_at: body.occurred_at,
        },
        caller.apps(),
    )
    .await?;
    let status = if recorded.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let answer = ReceiptAnswer {
        notification_id: body.notification_id,
        device_id: body.device_id,
        delivery_id: recorded.delivery_id,
        event: body.event,
        occurred_at: recorded.occurred_at,
    };
    Ok((status, axum::Json(answer)).into_response())
}

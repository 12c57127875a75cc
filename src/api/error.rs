//! The one error shape every route answers with:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`.
//!
//! `code` is stable and machine-readable; `message` is written for the
//! person reading it (what is wrong and what to do); `field` names the
//! offending request field when there is one. Internal failures are
//! logged in full and answered with the request id only, so nothing about
//! the database leaks to callers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::campaigns::CampaignError;
use crate::store::notifications::OutboxError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds, for 429 and 503 answers.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Names the request field the error is about.
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// A failure that is ours, not the caller's: logged in full here, and
    /// answered without details (the response's x-request-id finds the
    /// log line).
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "pushrelay failed to handle this request; nothing was changed unless the response said so. \
             Retry, and if it keeps failing give the operator this response's x-request-id",
        )
    }

    /// The database could not be reached in time: the caller may retry.
    pub fn unavailable(error: impl std::fmt::Display) -> ApiError {
        tracing::warn!(%error, "database unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is not reachable right now; nothing was changed. Retry in a few seconds",
        )
        .retry_after(2)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ApiError::unavailable(e)
            }
            // A value PostgreSQL cannot hold as text reached a query (a
            // NUL character, from a path or query parameter): the
            // caller's input, not our failure.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                ApiError::bad_request(
                    "invalid_text",
                    "a text value in this request contains a character that cannot be stored \
                     (a NUL character, \\u0000); remove it",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

/// A campaign's problem, named by its field: what the caller must change
/// is 422 (400 for an unreadable upload), a campaign that is gone 404, one
/// whose state forbids the request 409.
impl From<CampaignError> for ApiError {
    fn from(e: CampaignError) -> ApiError {
        let e = match e {
            CampaignError::Database(db) | CampaignError::Content(OutboxError::Database(db)) => {
                return db.into()
            }
            e => e,
        };
        let field = e.field();
        let err = match &e {
            // A stored value this build does not know: ours, not the caller's.
            CampaignError::Unknown(_) | CampaignError::Database(_) => return ApiError::internal(e),
            CampaignError::NotFound(id) => ApiError::not_found(
                "campaign_not_found",
                format!("no campaign {id} (or not one of the apps this API key may see)"),
            ),
            CampaignError::Started { .. } => {
                ApiError::new(StatusCode::CONFLICT, "campaign_started", e.to_string())
            }
            CampaignError::Finished { .. } => {
                ApiError::new(StatusCode::CONFLICT, "campaign_finished", e.to_string())
            }
            CampaignError::BadUpload(_) => ApiError::bad_request("invalid_csv", e.to_string()),
            CampaignError::UnknownApp(..) => ApiError::unprocessable("unknown_app", e.to_string()),
            CampaignError::UnknownUserList(_) => {
                ApiError::unprocessable("unknown_user_list", e.to_string())
            }
            CampaignError::EmptyAudience => {
                ApiError::unprocessable("empty_audience", e.to_string())
            }
            CampaignError::ReachesNoDevice { .. } => {
                ApiError::unprocessable("reaches_no_device", e.to_string())
            }
            // The store checks the consent category with the segment, but
            // it is a field of its own in every request.
            CampaignError::BadSegment {
                field: "category",
                problem,
            } => {
                return ApiError::unprocessable("invalid_field", format!("category: {problem}"))
                    .field("category")
            }
            CampaignError::AllWithFilters | CampaignError::BadSegment { .. } => {
                ApiError::unprocessable("invalid_segment", e.to_string())
            }
            CampaignError::BadSchedule { .. } => {
                ApiError::unprocessable("invalid_schedule", e.to_string())
            }
            CampaignError::InPast(_) => ApiError::unprocessable("schedule_in_past", e.to_string()),
            CampaignError::TtlTooShort { .. } => {
                ApiError::unprocessable("ttl_too_short", e.to_string())
            }
            CampaignError::Content(OutboxError::BadOptions(o)) => {
                // The option itself (`options.badge`) when it is one option's.
                let field = match o.option() {
                    Some(k) => format!("options.{k}"),
                    None => "options".to_owned(),
                };
                return ApiError::unprocessable("invalid_field", e.to_string()).field(field);
            }
            CampaignError::Content(_)
            | CampaignError::BadName
            | CampaignError::BadThrottle(_)
            | CampaignError::BadTtl(_) => ApiError::unprocessable("invalid_field", e.to_string()),
        };
        match field {
            Some(f) => err.field(f),
            None => err,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

//! Path and query extractors that answer a bad value the way every other
//! error is answered (JSON naming the parameter), instead of axum's
//! plain-text rejection.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `Path<Uuid>`, `Path<i64>`, ...: a malformed segment is a 400 naming it.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let mut err = ApiError::bad_request(
                    "invalid_path",
                    format!("a path parameter is not valid: {}", e.body_text()),
                );
                if let axum::extract::path::ErrorKind::ParseErrorAtKey { key, .. }
                | axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key }
                | axum::extract::path::ErrorKind::DeserializeError { key, .. } = e.kind()
                {
                    err.field = Some(key.clone());
                }
                Err(err)
            }
            Err(e) => Err(ApiError::bad_request("invalid_path", e.body_text())),
        }
    }
}

/// Query parameters: an unknown or malformed one is a 400 naming it.
/// Declare query structs `#[serde(deny_unknown_fields)]`.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| {
                let text = e.body_text();
                // "Failed to deserialize query string: unknown field `x`, ..."
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_owned();
                let field = detail
                    .split('`')
                    .nth(1)
                    .filter(|_| {
                        detail.starts_with("unknown field") || detail.starts_with("missing field")
                    })
                    .map(str::to_owned);
                let mut err = ApiError::bad_request(
                    "invalid_query",
                    format!("a query parameter is not valid: {detail}"),
                );
                err.field = field;
                err
            })
    }
}

/// Items per page of a listing: by default, and at most.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// A listing's `limit` and `cursor` query parameters, checked: every
/// paginated route takes them the same way.
pub fn page(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<(u32, Option<crate::store::notifications::Cursor>), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_PAGE}; got {limit}"),
        )
        .field("limit"));
    }
    let cursor =
        match cursor {
            None | Some("") => None,
            Some(c) => Some(crate::store::notifications::Cursor::decode(c).map_err(|e| {
                ApiError::bad_request("invalid_cursor", e.to_string()).field("cursor")
            })?),
        };
    Ok((limit, cursor))
}

//! Strict JSON request bodies. axum's own `Json` answers a bad body with a
//! plain-text message; this one answers with the API's error shape and
//! names the field the body went wrong at (`notifications[3].ttl_seconds`),
//! including an unknown field (every body type denies unknown fields, so a
//! misspelt option is an error, not silently ignored).

use axum::extract::{FromRequest, Request};
use axum::http::header;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
                    || mime.to_ascii_lowercase().ends_with("+json")
            });
        if !json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                super::too_large()
            } else {
                ApiError::bad_request("unreadable_body", format!("cannot read the body: {e}"))
            }
        })?;
        parse(&bytes).map(Json)
    }
}

/// Parses a body, naming the field a problem is at.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // serde_json's own position ("at line 1 column 17") is noise for an
        // API caller once the field is named.
        let message = match message.rfind(" at line ") {
            Some(i) if inner.is_data() => message[..i].to_owned(),
            _ => message,
        };
        let field = (path != ".").then_some(path);
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {message}"),
            )
        } else {
            let mut err = ApiError::unprocessable(
                "invalid_field",
                match &field {
                    Some(f) => format!("{f}: {message}"),
                    None => message,
                },
            );
            err.field = field;
            err
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        #[serde(default)]
        count: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Batch {
        items: Vec<Item>,
    }

    #[test]
    fn names_the_field_a_body_goes_wrong_at() {
        let e = parse::<Batch>(br#"{"items": [{"name": "a"}, {"name": "b", "cuont": 1}]}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("items[1].cuont"));
        assert!(e.message.contains("unknown field `cuont`"), "{}", e.message);
        assert_eq!(e.status, 422);

        let e = parse::<Batch>(br#"{"items": [{"name": 5}]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("items[0].name"));

        let e = parse::<Batch>(br#"{"items": [}"#).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "malformed_json"));
    }
}

//! SNS's answers, mapped to what happens next. The SDK's own retries are
//! off (one place counts retries: the worker's policy), but its
//! classification is kept: the error codes the SDK would retry as
//! throttling or transient, and any 5xx, are transient here.

use std::error::Error as _;

use aws_credential_types::provider::error::CredentialsError;
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};

use crate::model::mask_token;
use crate::providers::SendError;

/// Codes that say our AWS credentials or permissions are wrong: no retry
/// can help until an operator fixes them, so the app pauses.
const CREDENTIAL_ERRORS: &[&str] = &[
    "AuthorizationError",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "KMSAccessDenied",
];

/// SNS's own throttling codes (`ThrottledException` is modeled with the
/// code `Throttled`), which the SDK's generic list does not name.
const SNS_THROTTLING: &[&str] = &["Throttled", "KMSThrottling"];

/// An SNS call's failure → what happens next. `token` is masked wherever
/// the answer repeats it.
pub fn classify<E>(
    err: &SdkError<E, aws_sdk_sns::config::http::HttpResponse>,
    token: &str,
) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mask = |s: String| {
        if token.is_empty() {
            s
        } else {
            s.replace(token, &mask_token(token))
        }
    };
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            // An answer outside the modeled shape (an authorization error
            // from a front end, say) still names its code in the XML.
            let body = e.raw().body().bytes().map(String::from_utf8_lossy);
            let tag = |name: &str| body.as_deref().and_then(|b| xml_tag(b, name));
            let code = err.code().or_else(|| tag("Code")).unwrap_or("");
            let message = err.message().or_else(|| tag("Message"));
            let reason = mask(match message {
                Some(m) if !m.is_empty() => format!("{code}: {m}"),
                _ if code.is_empty() => format!("HTTP {status}"),
                _ => code.to_owned(),
            });
            classify_code(status, code, reason)
        }
        SdkError::TimeoutError(_) => SendError::Transient {
            status: None,
            reason: "no answer from SNS in time".into(),
            retry_after: None,
        },
        SdkError::ResponseError(e) => SendError::Transient {
            status: Some(e.raw().status().as_u16()),
            reason: "SNS answered with a response that could not be read".into(),
            retry_after: None,
        },
        SdkError::DispatchFailure(d) => {
            let detail = mask(
                aws_sdk_sns::error::DisplayErrorContext(err)
                    .to_string()
                    .replace('\n', " "),
            );
            if credentials_missing(err) {
                SendError::config(
                    None,
                    format!("no usable AWS credentials: {detail}; set them in the environment, a profile, web identity or the instance role"),
                )
            } else if d.is_io() || d.is_timeout() {
                // The request did not get an answer; SNS may or may not
                // have it. It is retried like any transient failure.
                SendError::Transient {
                    status: None,
                    reason: format!("could not reach SNS: {detail}"),
                    retry_after: None,
                }
            } else {
                SendError::Transient {
                    status: None,
                    reason: format!("SNS request failed: {detail}"),
                    retry_after: None,
                }
            }
        }
        // A request that could not be built (an invalid parameter caught
        // by the SDK itself).
        _ => SendError::Permanent {
            status: None,
            reason: mask(aws_sdk_sns::error::DisplayErrorContext(err).to_string()),
        },
    }
}

/// The text of the first `<name>` element of an XML answer.
fn xml_tag<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&format!("</{name}>"))?;
    Some(body[start..start + len].trim())
}

fn credentials_missing<E, R>(err: &SdkError<E, R>) -> bool
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut source = err.source();
    while let Some(e) = source {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A service error's code (and HTTP status) → what happens next.
pub fn classify_code(status: u16, code: &str, reason: String) -> SendError {
    let status_opt = Some(status);
    match code {
        "EndpointDisabled" => SendError::TokenDead {
            status: status_opt,
            reason,
            since: None,
        },
        // The platform application's APNs/FCM credentials were rejected:
        // every device of the app would fail alike.
        "PlatformApplicationDisabled" => SendError::config(status_opt, reason),
        c if CREDENTIAL_ERRORS.contains(&c) => SendError::config(status_opt, reason),
        c if THROTTLING_ERRORS.contains(&c)
            || SNS_THROTTLING.contains(&c)
            || TRANSIENT_ERRORS.contains(&c)
            || status >= 500 =>
        {
            SendError::Transient {
                status: status_opt,
                reason,
                retry_after: None,
            }
        }
        // 403 without a known code is an authorization problem as well.
        _ if status == 401 || status == 403 => SendError::config(status_opt, reason),
        _ if status == 429 => SendError::Transient {
            status: status_opt,
            reason,
            retry_after: None,
        },
        // InvalidParameter, ParameterValueInvalid, NotFound, ...: sending
        // the same request again cannot succeed.
        _ => SendError::Permanent {
            status: status_opt,
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn what(status: u16, code: &str) -> crate::model::AttemptOutcome {
        classify_code(status, code, code.into()).outcome()
    }

    #[test]
    fn codes_are_read_from_unmodeled_answers() {
        let body = "<Response><Errors><Error><Code>InvalidClientTokenId</Code>\
                    <Message>The security token included in the request is invalid.</Message>\
                    </Error></Errors></Response>";
        assert_eq!(xml_tag(body, "Code"), Some("InvalidClientTokenId"));
        assert_eq!(
            xml_tag(body, "Message"),
            Some("The security token included in the request is invalid.")
        );
        assert_eq!(xml_tag("<html>500</html>", "Code"), None);
    }

    #[test]
    fn codes_map_to_what_happens_next() {
        use crate::model::AttemptOutcome::*;
        assert_eq!(what(400, "EndpointDisabled"), TokenDead);
        assert_eq!(what(400, "InvalidParameter"), Permanent);
        assert_eq!(what(400, "ParameterValueInvalid"), Permanent);
        assert_eq!(what(403, "AuthorizationError"), ConfigError);
        assert_eq!(what(403, "InvalidClientTokenId"), ConfigError);
        assert_eq!(what(400, "PlatformApplicationDisabled"), ConfigError);
        assert_eq!(what(400, "Throttling"), Transient);
        assert_eq!(what(400, "Throttled"), Transient);
        assert_eq!(what(500, "InternalError"), Transient);
        assert_eq!(what(503, ""), Transient);
        assert_eq!(what(403, "SomethingNew"), ConfigError);
    }
}

//! Google's documented answers, mapped to what happens next. Errors come
//! as google.rpc status bodies whose FCM code is in `details`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::providers::SendError;

/// Google: back off at least a minute after QUOTA_EXCEEDED.
pub(super) const QUOTA_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
pub(super) struct RpcBody {
    pub(super) error: RpcStatus,
}

#[derive(Deserialize)]
pub(super) struct RpcStatus {
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) message: String,
    #[serde(default)]
    details: Vec<Value>,
}

pub(super) fn fcm_error_code(s: &RpcStatus) -> Option<String> {
    s.details.iter().find_map(|d| {
        let ty = d.get("@type")?.as_str()?;
        ty.ends_with("google.firebase.fcm.v1.FcmError")
            .then(|| d.get("errorCode")?.as_str().map(str::to_owned))
            .flatten()
    })
}

/// Google's documented answers → what happens next.
pub fn classify(
    status: u16,
    code: Option<&str>,
    rpc_status: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> SendError {
    let s = Some(status);
    let reason = || {
        let name = code.unwrap_or(if rpc_status.is_empty() {
            "error"
        } else {
            rpc_status
        });
        if message.is_empty() {
            name.to_owned()
        } else {
            format!("{name}: {message}")
        }
    };
    match code {
        Some("UNREGISTERED") => SendError::TokenDead {
            status: s,
            reason: reason(),
            since: None,
        },
        // The token belongs to another Firebase project: dead for this app,
        // unless every device says so (the guard: wrong service account).
        Some("SENDER_ID_MISMATCH") => SendError::TokenDead {
            status: s,
            reason: reason(),
            since: None,
        },
        Some("INVALID_ARGUMENT") if message.to_ascii_lowercase().contains("registration token") => {
            SendError::TokenDead {
                status: s,
                reason: reason(),
                since: None,
            }
        }
        Some("INVALID_ARGUMENT") => SendError::Permanent {
            status: s,
            reason: reason(),
        },
        // The APNs or web-push credentials stored in Firebase are wrong.
        Some("THIRD_PARTY_AUTH_ERROR") => SendError::config(s, reason()),
        Some("QUOTA_EXCEEDED") => SendError::Transient {
            status: s,
            reason: reason(),
            retry_after: Some(retry_after.unwrap_or(QUOTA_BACKOFF).max(QUOTA_BACKOFF)),
        },
        Some("UNAVAILABLE" | "INTERNAL") => SendError::Transient {
            status: s,
            reason: reason(),
            retry_after,
        },
        _ => match status {
            // Our credentials or project are wrong (token refresh did not
            // help), or the service account may not send for the project
            // (PERMISSION_DENIED comes with 403).
            401 | 403 | 404 => SendError::config(s, reason()),
            429 => SendError::Transient {
                status: s,
                reason: reason(),
                retry_after: Some(retry_after.unwrap_or(QUOTA_BACKOFF).max(QUOTA_BACKOFF)),
            },
            500..=599 => SendError::Transient {
                status: s,
                reason: reason(),
                retry_after,
            },
            _ => SendError::Permanent {
                status: s,
                reason: reason(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn quota_exceeded_backs_off_at_least_a_minute() {
        let e = classify(
            429,
            Some("QUOTA_EXCEEDED"),
            "RESOURCE_EXHAUSTED",
            "",
            Some(Duration::from_secs(5)),
        );
        assert!(
            matches!(e, SendError::Transient { retry_after: Some(d), .. } if d == QUOTA_BACKOFF)
        );
    }
}

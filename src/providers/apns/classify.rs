//! Apple's documented answers, mapped to what happens next.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::providers::SendError;

/// Apple's documented answers → what happens next.
pub fn classify(
    status: u16,
    reason: &str,
    timestamp_ms: Option<i64>,
    retry_after: Option<Duration>,
) -> SendError {
    let status_code = Some(status);
    let reason_text = || reason.to_owned();
    match (status, reason) {
        // Token-level: the worker's guard decides whether to believe them
        // (every device answering so is a wrong topic or gateway).
        (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => SendError::TokenDead {
            status: status_code,
            reason: reason_text(),
            since: timestamp_ms.and_then(DateTime::<Utc>::from_timestamp_millis),
        },
        // The app's setup is wrong, not this message: every send of this
        // app environment would fail the same way, so it pauses.
        (
            400 | 403,
            "BadCertificate"
            | "BadCertificateEnvironment"
            | "BadEnvironmentKeyInToken"
            | "UnrelatedKeyIdInToken"
            | "Forbidden"
            | "InvalidProviderToken"
            | "MissingProviderToken"
            | "BadTopic"
            | "TopicDisallowed"
            | "MissingTopic"
            | "InvalidPushType",
        ) => SendError::config(status_code, reason_text()),
        // Reached with certificate auth, or while re-signing is on hold
        // (a token signed just now is a config error in `Apns::send`):
        // possibly transient on Apple's side.
        (403, "ExpiredProviderToken") => SendError::Transient {
            status: status_code,
            reason: reason_text(),
            retry_after,
        },
        (429, _) | (500..=599, _) | (_, "IdleTimeout" | "Shutdown" | "ServiceUnavailable") => {
            SendError::Transient {
                status: status_code,
                reason: reason_text(),
                retry_after,
            }
        }
        // BadCollapseId, BadExpirationDate, BadMessageId, BadPriority,
        // DuplicateHeaders, MissingDeviceToken, PayloadEmpty, 413 PayloadTooLarge,
        // 404 BadPath, 405 MethodNotAllowed: the request is wrong.
        _ => SendError::Permanent {
            status: status_code,
            reason: reason_text(),
        },
    }
}

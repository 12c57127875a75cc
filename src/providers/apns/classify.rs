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
        (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => SendError::TokenDead {
            status: status_code,
            reason: reason_text(),
            since: timestamp_ms.and_then(DateTime::<Utc>::from_timestamp_millis),
        },
        (
            403,
            "BadCertificate"
            | "BadCertificateEnvironment"
            | "Forbidden"
            | "InvalidProviderToken"
            | "MissingProviderToken",
        ) => SendError::Config {
            status: status_code,
            reason: reason_text(),
            pause: None,
        },
        // Re-signing did not help: the clock or the key setup is off, but
        // it may also be transient on Apple's side.
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
        // BadTopic, DuplicateHeaders, InvalidPushType, MissingDeviceToken,
        // MissingTopic, PayloadEmpty, TopicDisallowed, 413 PayloadTooLarge,
        // 404 BadPath, 405 MethodNotAllowed: the request is wrong.
        _ => SendError::Permanent {
            status: status_code,
            reason: reason_text(),
        },
    }
}

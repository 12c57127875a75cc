//! The APNs JSON payload and Apple's size limits, checked before anything
//! is sent.

use crate::providers::SendError;
use crate::templates::Rendered;

pub const MAX_PAYLOAD: usize = 4096;
pub const MAX_VOIP_PAYLOAD: usize = 5120;

/// The APNs JSON payload of a notification: `aps` with the alert (or
/// `content-available` for background pushes) beside the custom data keys,
/// refused before sending when it exceeds Apple's limit.
pub fn payload(c: &Rendered, push_type: &str) -> Result<Vec<u8>, SendError> {
    let aps = if push_type == "background" {
        serde_json::json!({"content-available": 1})
    } else {
        let mut alert = serde_json::Map::new();
        if let Some(t) = &c.title {
            alert.insert("title".into(), t.as_str().into());
        }
        alert.insert("body".into(), c.body.as_str().into());
        serde_json::json!({"alert": alert, "sound": "default"})
    };
    let mut root = serde_json::Map::with_capacity(c.data.len() + 1);
    for (k, v) in &c.data {
        // Custom keys sit beside "aps", which is Apple's.
        if k != "aps" {
            root.insert(k.clone(), v.as_str().into());
        }
    }
    root.insert("aps".into(), aps);
    let body = serde_json::to_vec(&root).expect("JSON values serialize");
    let limit = if push_type == "voip" {
        MAX_VOIP_PAYLOAD
    } else {
        MAX_PAYLOAD
    };
    if body.len() > limit {
        return Err(SendError::Permanent {
            status: None,
            reason: format!(
                "PayloadTooLarge: the APNs payload is {} bytes, the limit is {limit}; not sent",
                body.len()
            ),
        });
    }
    Ok(body)
}

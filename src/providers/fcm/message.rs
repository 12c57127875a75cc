//! The FCM v1 message for one device, in proto3 JSON: string `data`
//! values, `android.ttl` as a duration string, and an `apns` block for iOS
//! devices reached through FCM.

use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::model::{Platform, Priority};
use crate::providers::{Message, SendError};

pub const MAX_PAYLOAD: usize = 4096;
/// FCM keeps messages for at most 28 days.
const MAX_TTL_SECS: i64 = 2_419_200;

/// The v1 message for one device.
pub fn message(msg: &Message<'_>) -> Result<Value, SendError> {
    let c = msg.content;
    let mut notification = Map::new();
    if let Some(t) = &c.title {
        notification.insert("title".into(), t.as_str().into());
    }
    notification.insert("body".into(), c.body.as_str().into());
    let data: Map<String, Value> = c
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().into()))
        .collect();
    let size = serde_json::to_vec(&notification)
        .map(|v| v.len())
        .unwrap_or(0)
        + serde_json::to_vec(&data).map(|v| v.len()).unwrap_or(0);
    if size > MAX_PAYLOAD {
        return Err(SendError::Permanent {
            status: None,
            reason: format!("message is too big: notification and data are {size} bytes, FCM allows {MAX_PAYLOAD}; not sent"),
        });
    }
    let ttl = (msg.expires_at - Utc::now())
        .num_seconds()
        .clamp(0, MAX_TTL_SECS);
    let mut m = Map::new();
    m.insert("token".into(), msg.token.into());
    m.insert("notification".into(), Value::Object(notification));
    if !data.is_empty() {
        m.insert("data".into(), Value::Object(data));
    }
    match msg.platform {
        Platform::Android => {
            let mut android = Map::new();
            let priority = match msg.priority {
                Priority::Urgent => "high",
                Priority::Bulk => "normal",
            };
            android.insert("priority".into(), priority.into());
            android.insert("ttl".into(), format!("{ttl}s").into());
            if let Some(k) = msg.collapse_key {
                android.insert("collapse_key".into(), k.into());
            }
            m.insert("android".into(), Value::Object(android));
        }
        Platform::Ios => {
            let mut headers = Map::new();
            let priority = match msg.priority {
                Priority::Urgent => "10",
                Priority::Bulk => "5",
            };
            headers.insert("apns-priority".into(), priority.into());
            headers.insert(
                "apns-expiration".into(),
                msg.expires_at.timestamp().max(0).to_string().into(),
            );
            if let Some(k) = msg.collapse_key {
                headers.insert("apns-collapse-id".into(), k.into());
            }
            m.insert("apns".into(), json!({ "headers": headers }));
        }
    }
    Ok(json!({ "message": m }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Environment;
    use crate::templates::Rendered;

    fn msg<'a>(platform: Platform, content: &'a Rendered) -> Message<'a> {
        Message {
            platform,
            token: "tok",
            environment: Environment::Production,
            priority: Priority::Bulk,
            collapse_key: Some("k"),
            expires_at: Utc::now() + chrono::Duration::seconds(600),
            content,
        }
    }

    #[test]
    fn ios_devices_through_fcm_get_an_apns_block() {
        let content = Rendered {
            title: None,
            body: "b".into(),
            data: vec![],
        };
        let m = message(&msg(Platform::Ios, &content)).unwrap();
        let headers = &m["message"]["apns"]["headers"];
        assert_eq!(headers["apns-priority"], "5");
        assert_eq!(headers["apns-collapse-id"], "k");
        assert!(m["message"].get("android").is_none() && m["message"].get("data").is_none());
    }

    #[test]
    fn android_ttl_is_a_duration_string_of_the_remaining_lifetime() {
        let content = Rendered {
            title: Some("t".into()),
            body: "b".into(),
            data: vec![("n".into(), "1".into())],
        };
        let m = message(&msg(Platform::Android, &content)).unwrap();
        let a = &m["message"]["android"];
        assert_eq!(a["priority"], "normal");
        let ttl: i64 = a["ttl"]
            .as_str()
            .unwrap()
            .strip_suffix('s')
            .unwrap()
            .parse()
            .unwrap();
        assert!((590..=600).contains(&ttl));
        assert_eq!(m["message"]["data"]["n"], "1");
    }
}

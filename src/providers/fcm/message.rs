//! The FCM v1 message for one device, in proto3 JSON: string `data`
//! values, `android.ttl` as a duration string, an `android.notification`
//! with the Android options, and an `apns` block (headers and a full
//! `aps`) for iOS devices reached through FCM. Field names and placement
//! follow Google's v1 `Message`, `AndroidNotification`, `ApnsConfig` and
//! `FcmOptions` references.

use serde_json::{json, Map, Value};

use crate::content::{PushType, Sound};
use crate::model::{Platform, Priority};
use crate::providers::apns::payload::{self, aps, ID_KEY};
use crate::providers::{Message, SendError};

pub const MAX_PAYLOAD: usize = 4096;
/// FCM keeps messages for at most 28 days.
const MAX_TTL_SECS: i64 = 2_419_200;

/// The size FCM holds against its 4096-byte limit: the bytes of the
/// `data` keys and values and of the notification's texts, not the JSON
/// around them (Google: "the maximum payload ... is 4096 bytes"; the
/// legacy docs count key and value lengths, and an oversized message is
/// answered INVALID_ARGUMENT "Message is too big").
pub fn counted_size(notification: &Map<String, Value>, data: &Map<String, Value>) -> usize {
    let strings = |m: &Map<String, Value>| -> usize {
        m.iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum()
    };
    strings(notification) + strings(data)
}

/// The v1 message for one device.
pub fn message(msg: &Message<'_>) -> Result<Value, SendError> {
    let c = msg.content;
    let o = &c.options;
    let silent = o.is_data_only();
    let push_type = o.push_type_or(PushType::Alert);
    if msg.platform == Platform::Ios && !matches!(push_type, PushType::Alert | PushType::Background)
    {
        return Err(SendError::Permanent {
            status: None,
            reason: format!(
                "push type {push_type} cannot be sent through FCM (only alert and background); send it through APNs directly (provider = \"apns\")"
            ),
        });
    }
    let collapse_id = msg.collapse_id();
    let mut notification = Map::new();
    if !silent {
        if let Some(t) = &c.title {
            notification.insert("title".into(), t.as_str().into());
        }
        notification.insert("body".into(), c.body.as_str().into());
        if let Some(i) = &o.image {
            notification.insert("image".into(), i.as_str().into());
        }
    }
    let mut data: Map<String, Value> = c
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().into()))
        .collect();
    if silent {
        // The app shows (or not) what a silent push means: it needs the id
        // to recognise a duplicate.
        data.insert(ID_KEY.into(), collapse_id.as_ref().into());
    }
    let size = counted_size(&notification, &data);
    if size > MAX_PAYLOAD {
        return Err(SendError::Permanent {
            status: None,
            reason: format!("message is too big: its data keys and values and notification texts are {size} bytes, FCM allows {MAX_PAYLOAD}; not sent"),
        });
    }
    let ttl = msg.ttl_seconds().min(MAX_TTL_SECS);
    let mut m = Map::new();
    m.insert("token".into(), msg.token.into());
    if !silent {
        m.insert("notification".into(), Value::Object(notification));
    }
    if !data.is_empty() {
        m.insert("data".into(), Value::Object(data));
    }
    if let Some(l) = &o.analytics_label {
        m.insert("fcm_options".into(), json!({ "analytics_label": l }));
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
            // Not the derived id: FCM keeps only four collapse keys per
            // device; the tag does the on-device de-duplication.
            if let Some(k) = msg.collapse_key {
                android.insert("collapse_key".into(), k.into());
            }
            if !silent {
                android.insert(
                    "notification".into(),
                    Value::Object(android_notification(msg, &collapse_id)),
                );
            }
            m.insert("android".into(), Value::Object(android));
        }
        Platform::Ios => {
            let mut headers = Map::new();
            headers.insert(
                "apns-priority".into(),
                payload::priority(msg.priority, push_type).into(),
            );
            headers.insert("apns-push-type".into(), push_type.as_str().into());
            headers.insert(
                "apns-expiration".into(),
                msg.apns_expiration().to_string().into(),
            );
            headers.insert("apns-collapse-id".into(), collapse_id.as_ref().into());
            let mut apns = Map::new();
            apns.insert("headers".into(), Value::Object(headers));
            apns.insert(
                "payload".into(),
                json!({ "aps": Value::Object(aps(c, push_type)) }),
            );
            if !silent {
                if let Some(i) = &o.image {
                    apns.insert("fcm_options".into(), json!({ "image": i }));
                }
            }
            m.insert("apns".into(), Value::Object(apns));
        }
    }
    Ok(json!({ "message": m }))
}

/// `android.notification`: what Android shows, beside the top-level
/// `notification`'s title, body and image.
fn android_notification(msg: &Message<'_>, collapse_id: &str) -> Map<String, Value> {
    let o = &msg.content.options;
    let mut n = Map::new();
    // A later notification with the same tag replaces the shown one: the
    // thread, else the collapse key, else the notification's own id (so a
    // retried duplicate replaces its twin).
    let tag = o.thread_id.as_deref().unwrap_or(collapse_id);
    n.insert("tag".into(), tag.into());
    if let Some(c) = &o.category {
        n.insert("click_action".into(), c.as_str().into());
    }
    if let Some(c) = &o.channel_id {
        n.insert("channel_id".into(), c.as_str().into());
    }
    if let Some(i) = &o.icon {
        n.insert("icon".into(), i.as_str().into());
    }
    if let Some(c) = &o.color {
        n.insert("color".into(), c.as_str().into());
    }
    if let Some(c) = o.notification_count {
        n.insert("notification_count".into(), c.into());
    }
    match &o.sound {
        None => {
            n.insert("default_sound".into(), true.into());
        }
        Some(Sound::Name(s)) if s == "none" => {}
        Some(Sound::Name(s)) if s == "default" => {
            n.insert("default_sound".into(), true.into());
        }
        Some(Sound::Name(s)) | Some(Sound::Critical { name: s, .. }) => {
            n.insert("sound".into(), s.as_str().into());
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Environment;
    use crate::templates::Rendered;
    use chrono::Utc;

    fn msg<'a>(platform: Platform, content: &'a Rendered) -> Message<'a> {
        Message {
            platform,
            token: "tok",
            environment: Environment::Production,
            priority: Priority::Bulk,
            collapse_key: Some("k"),
            notification_id: uuid::Uuid::nil(),
            expires_at: Utc::now() + chrono::Duration::seconds(600),
            now_or_never: false,
            content,
            device_id: 1,
            endpoint_arn: None,
            endpoint_stale: false,
        }
    }

    #[test]
    fn ios_devices_through_fcm_get_an_apns_block() {
        let content = Rendered {
            title: None,
            body: "b".into(),
            data: vec![],
            options: Default::default(),
        };
        let m = message(&msg(Platform::Ios, &content)).unwrap();
        let headers = &m["message"]["apns"]["headers"];
        assert_eq!(headers["apns-priority"], "5");
        assert_eq!(headers["apns-collapse-id"], "k");
        assert_eq!(
            m["message"]["apns"]["payload"]["aps"]["alert"]["body"], "b",
            "iOS through FCM gets a full aps (sound, badge ...)"
        );
        assert!(m["message"].get("android").is_none() && m["message"].get("data").is_none());
    }

    #[test]
    fn android_ttl_is_a_duration_string_of_the_remaining_lifetime() {
        let content = Rendered {
            title: Some("t".into()),
            body: "b".into(),
            data: vec![("n".into(), "1".into())],
            options: Default::default(),
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

    #[test]
    fn size_counts_keys_and_values_not_json() {
        let n = json!({"title": "ab", "body": "cde"});
        let d = json!({"k": "vv"});
        assert_eq!(
            counted_size(n.as_object().unwrap(), d.as_object().unwrap()),
            5 + 2 + 4 + 3 + 1 + 2
        );
    }

    #[test]
    fn now_or_never_is_ttl_zero_and_silent_has_no_notification() {
        let content = Rendered {
            title: None,
            body: String::new(),
            data: vec![],
            options: crate::content::Options {
                data_only: Some(true),
                ..Default::default()
            },
        };
        let mut m = msg(Platform::Android, &content);
        m.now_or_never = true;
        m.collapse_key = None;
        let v = message(&m).unwrap();
        assert_eq!(v["message"]["android"]["ttl"], "0s");
        assert!(v["message"].get("notification").is_none());
        assert!(v["message"]["android"].get("notification").is_none());
        assert_eq!(v["message"]["data"][ID_KEY], uuid::Uuid::nil().to_string());
        let mut m = msg(Platform::Ios, &content);
        m.now_or_never = true;
        let v = message(&m).unwrap();
        let a = &v["message"]["apns"];
        assert_eq!(a["headers"]["apns-expiration"], "0");
        assert_eq!(a["headers"]["apns-priority"], "5");
        assert_eq!(a["headers"]["apns-push-type"], "background");
        assert_eq!(a["payload"], json!({"aps": {"content-available": 1}}));
    }
}

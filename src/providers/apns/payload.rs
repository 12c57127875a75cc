//! The APNs JSON payload and Apple's size limits, checked before anything
//! is sent. The `aps` dictionary is built here for APNs direct and for iOS
//! devices reached through FCM (`apns.payload.aps`) alike, from Apple's
//! "Generating a remote notification" payload key reference.

use serde_json::{Map, Value};

use crate::content::{PushType, Sound};
use crate::model::Priority;
use crate::providers::SendError;
use crate::templates::Rendered;

/// The custom key that carries the notification's id in a data-only push,
/// so an app that shows its own notifications can drop a duplicate.
pub const ID_KEY: &str = "pushrelay_id";

/// `apns-priority`: 10 sends at once, 5 saves the device's power. Apple
/// rejects 10 for a background push.
pub fn priority(priority: Priority, push_type: PushType) -> &'static str {
    match (priority, push_type) {
        (_, PushType::Background) | (Priority::Bulk, _) => "5",
        (Priority::Urgent, _) => "10",
    }
}

/// The `aps` dictionary. A background or data-only push carries only
/// `content-available: 1` (Apple: no alert, sound or badge); otherwise the
/// alert and every option that is set.
pub fn aps(c: &Rendered, push_type: PushType) -> Map<String, Value> {
    let o = &c.options;
    let mut aps = Map::new();
    if push_type == PushType::Background || o.is_data_only() {
        aps.insert("content-available".into(), 1.into());
        return aps;
    }
    let mut alert = Map::new();
    if let Some(t) = &c.title {
        alert.insert("title".into(), t.as_str().into());
    }
    if let Some(s) = &o.subtitle {
        alert.insert("subtitle".into(), s.as_str().into());
    }
    alert.insert("body".into(), c.body.as_str().into());
    aps.insert("alert".into(), Value::Object(alert));
    if let Some(b) = o.badge {
        // 0 clears the badge; absent leaves it alone.
        aps.insert("badge".into(), b.into());
    }
    match &o.sound {
        None => {
            aps.insert("sound".into(), "default".into());
        }
        Some(Sound::Name(n)) if n == "none" => {}
        Some(Sound::Name(n)) => {
            aps.insert("sound".into(), n.as_str().into());
        }
        Some(Sound::Critical {
            critical,
            name,
            volume,
        }) => {
            aps.insert(
                "sound".into(),
                serde_json::json!({"critical": critical, "name": name, "volume": volume}),
            );
        }
    }
    if let Some(t) = &o.thread_id {
        aps.insert("thread-id".into(), t.as_str().into());
    }
    if let Some(cat) = &o.category {
        aps.insert("category".into(), cat.as_str().into());
    }
    // An image needs the app's notification service extension to fetch it,
    // which iOS runs only with mutable-content.
    if o.mutable_content == Some(true) || o.image.is_some() {
        aps.insert("mutable-content".into(), 1.into());
    }
    if o.content_available == Some(true) {
        aps.insert("content-available".into(), 1.into());
    }
    if let Some(l) = o.interruption_level {
        aps.insert("interruption-level".into(), l.as_str().into());
    }
    if let Some(r) = o.relevance_score {
        aps.insert("relevance-score".into(), r.into());
    }
    if let Some(t) = &o.target_content_id {
        aps.insert("target-content-id".into(), t.as_str().into());
    }
    aps
}

/// The APNs JSON payload of a notification: `aps` beside the custom data
/// keys (and `image`, for the service extension; `pushrelay_id` in a
/// data-only push), refused before sending when it exceeds Apple's limit.
pub fn payload(c: &Rendered, push_type: PushType, id: &str) -> Result<Vec<u8>, SendError> {
    let mut root = Map::with_capacity(c.data.len() + 3);
    for (k, v) in &c.data {
        // Custom keys sit beside "aps", which is Apple's.
        if k != "aps" {
            root.insert(k.clone(), v.as_str().into());
        }
    }
    if let Some(i) = &c.options.image {
        root.entry("image").or_insert_with(|| i.as_str().into());
    }
    if push_type == PushType::Background || c.options.is_data_only() {
        root.insert(ID_KEY.into(), id.into());
    }
    root.insert("aps".into(), Value::Object(aps(c, push_type)));
    let body = serde_json::to_vec(&root).expect("JSON values serialize");
    let limit = push_type.payload_limit();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{InterruptionLevel, Options};
    use serde_json::json;

    fn rendered(options: Options) -> Rendered {
        Rendered {
            title: Some("T".into()),
            body: "B".into(),
            data: vec![("k".into(), "v".into())],
            options,
        }
    }

    #[test]
    fn every_option_lands_in_aps() {
        let c = rendered(Options {
            subtitle: Some("S".into()),
            badge: Some(0),
            sound: Some(Sound::Critical {
                critical: 1,
                name: "alarm.caf".into(),
                volume: 0.8,
            }),
            thread_id: Some("th".into()),
            category: Some("PAY".into()),
            interruption_level: Some(InterruptionLevel::TimeSensitive),
            relevance_score: Some(0.5),
            target_content_id: Some("tc".into()),
            image: Some("https://x/i.png".into()),
            ..Options::default()
        });
        let p: Value =
            serde_json::from_slice(&payload(&c, PushType::Alert, "id").unwrap()).unwrap();
        assert_eq!(
            p,
            json!({"k": "v", "image": "https://x/i.png", "aps": {
                "alert": {"title": "T", "subtitle": "S", "body": "B"}, "badge": 0,
                "sound": {"critical": 1, "name": "alarm.caf", "volume": 0.8},
                "thread-id": "th", "category": "PAY", "mutable-content": 1,
                "interruption-level": "time-sensitive", "relevance-score": 0.5,
                "target-content-id": "tc"}})
        );
    }

    #[test]
    fn background_and_silent_pushes_carry_no_alert() {
        let c = rendered(Options {
            badge: Some(3),
            data_only: Some(true),
            ..Options::default()
        });
        let p: Value =
            serde_json::from_slice(&payload(&c, PushType::Alert, "id").unwrap()).unwrap();
        assert_eq!(
            p,
            json!({"k": "v", "pushrelay_id": "id", "aps": {"content-available": 1}})
        );
        let quiet = rendered(Options {
            sound: Some(Sound::Name("none".into())),
            ..Options::default()
        });
        assert!(aps(&quiet, PushType::Alert).get("sound").is_none());
    }
}

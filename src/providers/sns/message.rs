//! The SNS `Publish` of one push: `MessageStructure=json` with the
//! platform's payload as a JSON *string* under its key (`APNS` or
//! `APNS_SANDBOX` with the same `aps` dictionary the APNs client sends,
//! `GCM` with the FCM v1 message the FCM client sends, wrapped in
//! `fcmV1Message`), a `default` text SNS requires, and the reserved
//! message attributes for what APNs takes as headers (TTL, priority,
//! push type, collapse id), which SNS passes on.

use serde_json::{json, Value};

use crate::content::PushType;
use crate::model::{Environment, Platform};
use crate::providers::apns::payload;
use crate::providers::fcm;
use crate::providers::{Message, SendError};

/// FCM keeps messages for at most 28 days; SNS passes the TTL on.
const MAX_FCM_TTL_SECS: i64 = 2_419_200;

/// What `Publish` carries besides the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// The JSON object of platform payloads (each a JSON string).
    pub message: String,
    /// Reserved `AWS.SNS.MOBILE.*` attributes, all of data type String.
    pub attributes: Vec<(&'static str, String)>,
}

/// The payload key (and attribute infix) of a device's platform.
pub fn platform_key(platform: Platform, environment: Environment) -> &'static str {
    match (platform, environment) {
        (Platform::Android, _) => "GCM",
        (Platform::Ios, Environment::Production) => "APNS",
        (Platform::Ios, Environment::Sandbox) => "APNS_SANDBOX",
    }
}

/// Builds the publish of `msg`; `push_type` is the route's default.
pub fn publish(msg: &Message<'_>, push_type: PushType) -> Result<Publish, SendError> {
    let c = msg.content;
    let key = platform_key(msg.platform, msg.environment);
    let ttl = msg.ttl_seconds();
    let (payload, attributes) = match msg.platform {
        Platform::Ios => {
            let push_type = c.options.push_type_or(push_type);
            if !matches!(push_type, PushType::Alert | PushType::Background) {
                return Err(SendError::Permanent {
                    status: None,
                    reason: format!(
                        "push type {push_type} cannot be sent through SNS (only alert and background); send it through APNs directly (provider = \"apns\")"
                    ),
                });
            }
            let collapse_id = msg.collapse_id();
            let body = payload::payload(c, push_type, &collapse_id)?;
            let body = String::from_utf8(body).expect("serde_json writes UTF-8");
            let ttl_key = match msg.environment {
                Environment::Production => "AWS.SNS.MOBILE.APNS.TTL",
                Environment::Sandbox => "AWS.SNS.MOBILE.APNS_SANDBOX.TTL",
            };
            let attributes = vec![
                (ttl_key, ttl.to_string()),
                (
                    "AWS.SNS.MOBILE.APNS.PRIORITY",
                    payload::priority(msg.priority, push_type).to_owned(),
                ),
                (
                    "AWS.SNS.MOBILE.APNS.PUSH_TYPE",
                    push_type.as_str().to_owned(),
                ),
                ("AWS.SNS.MOBILE.APNS.COLLAPSE_ID", collapse_id.into_owned()),
            ];
            (body, attributes)
        }
        Platform::Android => {
            let mut v1 = fcm::message(msg)?;
            // SNS puts the endpoint's token in itself.
            if let Some(m) = v1.get_mut("message").and_then(Value::as_object_mut) {
                m.remove("token");
            }
            let body = json!({ "fcmV1Message": v1 }).to_string();
            let attributes = vec![(
                "AWS.SNS.MOBILE.FCM.TTL",
                ttl.min(MAX_FCM_TTL_SECS).to_string(),
            )];
            (body, attributes)
        }
    };
    // `default` is what a platform without its own key would get; SNS
    // refuses a JSON message without it.
    let message = json!({ "default": c.body, key: payload }).to_string();
    Ok(Publish {
        message,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Options;
    use crate::model::Priority;
    use crate::templates::Rendered;
    use chrono::Utc;

    fn content(options: Options) -> Rendered {
        Rendered {
            title: Some("Transfer".into()),
            body: "You received 10 EUR".into(),
            data: vec![("kind".into(), "transfer".into())],
            options,
        }
    }

    fn msg<'a>(platform: Platform, env: Environment, c: &'a Rendered) -> Message<'a> {
        Message {
            platform,
            token: "tok",
            environment: env,
            priority: Priority::Urgent,
            collapse_key: None,
            notification_id: uuid::Uuid::nil(),
            expires_at: Utc::now() + chrono::Duration::seconds(600),
            now_or_never: false,
            content: c,
            device_id: 1,
            endpoint_arn: None,
            endpoint_stale: false,
        }
    }

    fn parsed(p: &Publish, key: &str) -> Value {
        let outer: Value = serde_json::from_str(&p.message).unwrap();
        assert_eq!(outer["default"], "You received 10 EUR");
        serde_json::from_str(outer[key].as_str().expect("a JSON string")).unwrap()
    }

    #[test]
    fn ios_carries_the_apns_payload_and_header_attributes() {
        let c = content(Options::default());
        let p = publish(
            &msg(Platform::Ios, Environment::Sandbox, &c),
            PushType::Alert,
        )
        .unwrap();
        let aps = parsed(&p, "APNS_SANDBOX");
        assert_eq!(aps["aps"]["alert"]["body"], "You received 10 EUR");
        assert_eq!(aps["kind"], "transfer");
        let names: Vec<_> = p.attributes.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "AWS.SNS.MOBILE.APNS_SANDBOX.TTL",
                "AWS.SNS.MOBILE.APNS.PRIORITY",
                "AWS.SNS.MOBILE.APNS.PUSH_TYPE",
                "AWS.SNS.MOBILE.APNS.COLLAPSE_ID"
            ]
        );
        let ttl: i64 = p.attributes[0].1.parse().unwrap();
        assert!((595..=600).contains(&ttl), "{ttl}");
        assert_eq!(p.attributes[1].1, "10");
        assert_eq!(p.attributes[3].1, uuid::Uuid::nil().to_string());
    }

    #[test]
    fn android_carries_the_fcm_v1_message_without_a_token() {
        let c = content(Options::default());
        let mut m = msg(Platform::Android, Environment::Production, &c);
        m.now_or_never = true;
        let p = publish(&m, PushType::Alert).unwrap();
        let v1 = parsed(&p, "GCM");
        let inner = &v1["fcmV1Message"]["message"];
        assert_eq!(inner["notification"]["title"], "Transfer");
        assert_eq!(inner["android"]["priority"], "high");
        assert!(inner.get("token").is_none());
        assert_eq!(p.attributes, [("AWS.SNS.MOBILE.FCM.TTL", "0".to_owned())]);
    }

    #[test]
    fn push_types_sns_cannot_carry_are_refused() {
        let c = content(Options::default());
        let err = publish(
            &msg(Platform::Ios, Environment::Production, &c),
            PushType::Voip,
        )
        .unwrap_err();
        assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");
    }
}

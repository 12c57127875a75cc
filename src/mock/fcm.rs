//! The FCM side of the mock: the OAuth token endpoint named in the service
//! account (`POST /token`, RS256 JWT-bearer assertion) and
//! `POST /v1/projects/<id>/messages:send`, which checks the access token,
//! the project and the proto3 JSON message before the fault script.
//! Errors are google.rpc status bodies with the FCM code in `details`.

use std::time::Instant;

use bytes::Bytes;
use hyper::http::request::Parts;
use serde::Deserialize;
use serde_json::{json as j, Map, Value};

use super::{json, Fault, Outcome, Route, State};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

fn rpc_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

/// A google.rpc status; `fcm_code` goes into `details`.
fn rpc_error(status: u16, fcm_code: Option<&str>, message: &str) -> Value {
    let mut err = j!({"code": status, "status": rpc_status(status), "message": message});
    if let Some(code) = fcm_code {
        err["details"] = j!([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]);
    }
    err
}

/// A google.rpc status answer.
fn error(status: u16, fcm_code: Option<&str>, message: &str, retry_after: Option<u64>) -> Outcome {
    let err = rpc_error(status, fcm_code, message);
    let headers: Vec<(&str, String)> = retry_after
        .map(|s| ("retry-after", s.to_string()))
        .into_iter()
        .collect();
    Outcome::Answer(json(status, &j!({ "error": err }), &headers))
}

fn invalid(message: &str) -> Outcome {
    error(400, Some("INVALID_ARGUMENT"), message, None)
}

/// A payload error as Google answers it: INVALID_ARGUMENT with the FCM
/// code and a `google.rpc.BadRequest` detail naming the field.
fn field_violation(v: &Violation) -> Outcome {
    let mut err = rpc_error(400, Some("INVALID_ARGUMENT"), &v.description);
    err["details"]
        .as_array_mut()
        .expect("rpc_error with a code has details")
        .push(j!({"@type": "type.googleapis.com/google.rpc.BadRequest",
                  "fieldViolations": [{"field": v.field, "description": v.description}]}));
    Outcome::Answer(json(400, &j!({ "error": err }), &[]))
}

/// One invalid field of a message.
struct Violation {
    field: String,
    description: String,
}

impl From<String> for Violation {
    fn from(description: String) -> Violation {
        let field = description
            .split('\'')
            .nth(1)
            .unwrap_or("message")
            .to_owned();
        Violation { field, description }
    }
}

fn violation(field: impl Into<String>, description: impl Into<String>) -> Violation {
    Violation {
        field: field.into(),
        description: description.into(),
    }
}

/// `AndroidNotification`'s fields (FCM v1 reference).
const ANDROID_NOTIFICATION: &[&str] = &[
    "title",
    "body",
    "icon",
    "color",
    "sound",
    "tag",
    "click_action",
    "body_loc_key",
    "body_loc_args",
    "title_loc_key",
    "title_loc_args",
    "channel_id",
    "ticker",
    "sticky",
    "event_time",
    "local_only",
    "notification_priority",
    "default_sound",
    "default_vibrate_timings",
    "default_light_settings",
    "vibrate_timings",
    "visibility",
    "notification_count",
    "light_settings",
    "image",
    "bypass_proxy_notification",
    "proxy",
];

/// The `aps` keys of Apple's payload key reference.
const APS: &[&str] = &[
    "alert",
    "badge",
    "sound",
    "thread-id",
    "category",
    "content-available",
    "mutable-content",
    "target-content-id",
    "interruption-level",
    "relevance-score",
    "filter-criteria",
    "stale-date",
    "content-state",
    "timestamp",
    "event",
    "dismissal-date",
    "attributes-type",
    "attributes",
    "input-push-channel",
    "input-push-token",
];

/// FCM's reserved data keys. Written here from Google's documentation, not
/// shared with the daemon (whose check is the database trigger): the mock
/// is the reference the daemon is tested against, so it keeps its own copy.
fn reserved(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["from", "message_type", "notification"].contains(&k.as_str())
        || k.starts_with("google")
        || k.starts_with("gcm")
}

#[derive(Deserialize)]
struct Assertion {
    scope: String,
    iat: i64,
    exp: i64,
}

pub(super) fn token(state: &State, parts: &Parts, body: &Bytes) -> super::Answer {
    let grant = |description: &str| {
        json(
            400,
            &j!({"error": "invalid_grant", "error_description": description}),
            &[],
        )
    };
    if parts.method != hyper::Method::POST {
        return json(405, &j!({"error": "invalid_request"}), &[]);
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return json(400, &j!({"error": "unsupported_grant_type"}), &[]);
    }
    let Some(assertion) = get("assertion") else {
        return grant("missing assertion");
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[state.token_uri.as_str()]);
    v.set_issuer(&[state.sa_email.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Assertion>(assertion, &state.sa_public, &v) {
        Ok(c) => c.claims,
        Err(e) => return grant(&format!("Invalid JWT: {e}")),
    };
    if !claims.scope.split(' ').any(|s| s == SCOPE) {
        return grant("the assertion does not ask for the firebase.messaging scope");
    }
    if claims.exp - claims.iat > 3600 {
        return grant("Invalid JWT: the token lifetime is longer than one hour");
    }
    let access = format!("ya29.mock-{}", uuid::Uuid::new_v4().simple());
    state
        .access_tokens
        .lock()
        .unwrap()
        .insert(access.clone(), Instant::now() + state.oauth_expires_in);
    state
        .oauth_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json(
        200,
        &j!({"access_token": access, "expires_in": state.oauth_expires_in.as_secs(), "token_type": "Bearer"}),
        &[],
    )
}

fn only_keys(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."
        )),
        None => Ok(()),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("Invalid value at '{at}': expected an object"))
}

fn string_map(v: &Value, at: &str) -> Result<usize, String> {
    let m = object(v, at)?;
    match m.iter().find(|(_, v)| !v.is_string()) {
        Some((k, _)) => Err(format!(
            "Invalid value at '{at}[{k}]': data values must be strings"
        )),
        None => Ok(m.len()),
    }
}

/// The proto3 JSON checks Google applies to a v1 message.
fn check_message(message: &Value) -> Result<String, Violation> {
    let m = object(message, "message")?;
    only_keys(
        m,
        &[
            "name",
            "data",
            "notification",
            "android",
            "webpush",
            "apns",
            "fcm_options",
            "token",
            "topic",
            "condition",
        ],
        "message",
    )?;
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|k| m.contains_key(**k))
        .count();
    if targets != 1 {
        return Err(violation(
            "message",
            "Exactly one of token, topic or condition must be specified",
        ));
    }
    if let Some(d) = m.get("data") {
        string_map(d, "message.data")?;
        if let Some((i, k)) = object(d, "message.data")?
            .keys()
            .enumerate()
            .find(|(_, k)| reserved(k))
        {
            return Err(violation(
                format!("message.data[{i}].key"),
                format!("Invalid data key: {k} is a reserved word (from, message_type, notification, or starting with google or gcm)"),
            ));
        }
    }
    if let Some(n) = m.get("notification") {
        only_keys(
            object(n, "message.notification")?,
            &["title", "body", "image"],
            "message.notification",
        )?;
    }
    if let Some(f) = m.get("fcm_options") {
        only_keys(
            object(f, "message.fcm_options")?,
            &["analytics_label"],
            "message.fcm_options",
        )?;
    }
    if let Some(a) = m.get("android") {
        let a = object(a, "message.android")?;
        only_keys(
            a,
            &[
                "collapse_key",
                "priority",
                "ttl",
                "restricted_package_name",
                "data",
                "notification",
                "fcm_options",
                "direct_boot_ok",
            ],
            "message.android",
        )?;
        if let Some(p) = a.get("priority") {
            if !p
                .as_str()
                .is_some_and(|p| ["high", "normal", "HIGH", "NORMAL"].contains(&p))
            {
                return Err(format!("Invalid value at 'message.android.priority': {p}").into());
            }
        }
        if let Some(ttl) = a.get("ttl") {
            let ok = ttl
                .as_str()
                .and_then(|t| t.strip_suffix('s'))
                .and_then(|n| n.parse::<f64>().ok());
            match ok {
                Some(secs) if (0.0..=2_419_200.0).contains(&secs) => {}
                _ => return Err(format!("Invalid value at 'message.android.ttl': {ttl}").into()),
            }
        }
        if let Some(n) = a.get("notification") {
            let n = object(n, "message.android.notification")?;
            only_keys(n, ANDROID_NOTIFICATION, "message.android.notification")?;
            if let Some(c) = n.get("color") {
                let ok = c.as_str().is_some_and(|c| {
                    c.len() == 7
                        && c.starts_with('#')
                        && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
                });
                if !ok {
                    return Err(violation(
                        "message.android.notification.color",
                        format!("Invalid value at 'message.android.notification.color': {c}: must be #rrggbb"),
                    ));
                }
            }
            if let Some(c) = n.get("notification_count") {
                if c.as_i64().is_none_or(|c| c < 0) {
                    return Err(violation(
                        "message.android.notification.notification_count",
                        format!("Invalid value at 'message.android.notification.notification_count': {c}"),
                    ));
                }
            }
        }
        if let Some(f) = a.get("fcm_options") {
            only_keys(
                object(f, "message.android.fcm_options")?,
                &["analytics_label"],
                "message.android.fcm_options",
            )?;
        }
    }
    if let Some(a) = m.get("apns") {
        let a = object(a, "message.apns")?;
        only_keys(
            a,
            &["headers", "payload", "fcm_options", "live_activity_token"],
            "message.apns",
        )?;
        if let Some(h) = a.get("headers") {
            string_map(h, "message.apns.headers")?;
            if let Some(e) = h.get("apns-expiration").and_then(Value::as_str) {
                if !e.parse::<i64>().is_ok_and(|e| e >= 0) {
                    return Err(violation(
                        "message.apns.headers",
                        format!("Invalid apns-expiration header: {e}"),
                    ));
                }
            }
        }
        if let Some(p) = a.get("payload") {
            // Custom keys may sit beside aps; aps itself is Apple's.
            if let Some(aps) = object(p, "message.apns.payload")?.get("aps") {
                only_keys(
                    object(aps, "message.apns.payload.aps")?,
                    APS,
                    "message.apns.payload.aps",
                )?;
            }
        }
        if let Some(f) = a.get("fcm_options") {
            only_keys(
                object(f, "message.apns.fcm_options")?,
                &["analytics_label", "image"],
                "message.apns.fcm_options",
            )?;
        }
    }
    // Google counts the bytes of the data keys and values and of the
    // notification's texts against 4096, not the JSON around them.
    let strings = |v: Option<&Value>| -> usize {
        v.and_then(Value::as_object).map_or(0, |m| {
            m.iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum()
        })
    };
    let size = strings(m.get("notification")) + strings(m.get("data"));
    if size > 4096 {
        return Err(violation(
            "message",
            format!("Message is too big: {size} bytes of data and notification, the limit is 4096"),
        ));
    }
    Ok(m.get("token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

pub(super) async fn send(state: &State, parts: &Parts, path: &str, body: Bytes) -> Outcome {
    let project = path
        .strip_prefix("/v1/projects/")
        .and_then(|p| p.strip_suffix("/messages:send"));
    let Some(project) = project else {
        return error(404, None, "Requested entity was not found.", None);
    };
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = bearer.is_some_and(|t| {
        state
            .access_tokens
            .lock()
            .unwrap()
            .get(t)
            .is_some_and(|exp| Instant::now() < *exp)
    });
    if !valid {
        return error(
            401,
            None,
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            None,
        );
    }
    if project != state.project {
        return error(403, None, &format!("Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/{project}'"), None);
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return invalid("Invalid JSON payload received.");
    };
    let Some(root) = doc.as_object() else {
        return invalid("Invalid JSON payload received.");
    };
    if let Some(k) = root
        .keys()
        .find(|k| !["message", "validate_only"].contains(&k.as_str()))
    {
        return invalid(&format!(
            "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
        ));
    }
    let token = match root
        .get("message")
        .ok_or_else(|| violation("message", "message is required"))
        .and_then(check_message)
    {
        Ok(t) => t,
        Err(v) => return field_violation(&v),
    };
    if token.len() < 8 || token.len() > 4096 || !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return invalid("The registration token is not a valid FCM registration token");
    }
    if let Some(retry_after) = state.over_quota() {
        return error(
            429,
            Some("QUOTA_EXCEEDED"),
            "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of service 'fcm.googleapis.com'.",
            Some(retry_after),
        );
    }
    let fault = state.fault_for(&token);
    match &fault {
        Some(Fault::Unregistered | Fault::ApnsUnregisteredSince { .. }) => {
            return error(
                404,
                Some("UNREGISTERED"),
                "Requested entity was not found.",
                None,
            )
        }
        Some(Fault::Unavailable) => {
            return error(
                503,
                Some("UNAVAILABLE"),
                "The service is currently unavailable.",
                None,
            )
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            return error(
                429,
                Some("QUOTA_EXCEEDED"),
                "Quota exceeded for quota metric 'Send requests'.",
                Some(*retry_after_secs),
            )
        }
        Some(Fault::Fcm {
            status,
            code,
            message,
        }) => {
            return error(
                *status,
                Some(code),
                message.as_deref().unwrap_or("Simulated error."),
                None,
            )
        }
        _ => {}
    }
    let ok = || {
        json(
            200,
            &j!({"name": format!("projects/{}/messages/0:{}", state.project, uuid::Uuid::new_v4().simple())}),
            &[],
        )
    };
    state
        .accept(Route::Fcm, &token, &parts.headers, doc, fault, ok)
        .await
}

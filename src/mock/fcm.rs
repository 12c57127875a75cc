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

use super::{json, sleep_ms, Fault, Outcome, Route, State};

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

/// A google.rpc status answer; `fcm_code` goes into `details`.
fn error(status: u16, fcm_code: Option<&str>, message: &str, retry_after: Option<u64>) -> Outcome {
    let mut err = j!({"code": status, "status": rpc_status(status), "message": message});
    if let Some(code) = fcm_code {
        err["details"] = j!([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]);
    }
    let headers: Vec<(&str, String)> = retry_after
        .map(|s| ("retry-after", s.to_string()))
        .into_iter()
        .collect();
    Outcome::Answer(json(status, &j!({ "error": err }), &headers))
}

fn invalid(message: &str) -> Outcome {
    error(400, Some("INVALID_ARGUMENT"), message, None)
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
fn check_message(message: &Value) -> Result<String, String> {
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
        return Err("Exactly one of token, topic or condition must be specified".into());
    }
    if let Some(d) = m.get("data") {
        string_map(d, "message.data")?;
    }
    if let Some(n) = m.get("notification") {
        only_keys(
            object(n, "message.notification")?,
            &["title", "body", "image"],
            "message.notification",
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
                return Err(format!("Invalid value at 'message.android.priority': {p}"));
            }
        }
        if let Some(ttl) = a.get("ttl") {
            let ok = ttl
                .as_str()
                .and_then(|t| t.strip_suffix('s'))
                .and_then(|n| n.parse::<f64>().ok());
            match ok {
                Some(secs) if (0.0..=2_419_200.0).contains(&secs) => {}
                _ => return Err(format!("Invalid value at 'message.android.ttl': {ttl}")),
            }
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
        }
    }
    let size = m
        .get("notification")
        .map(|v| v.to_string().len())
        .unwrap_or(0)
        + m.get("data").map(|v| v.to_string().len()).unwrap_or(0);
    if size > 4096 {
        return Err("Message is too big".into());
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
        .ok_or_else(|| "message is required".to_string())
        .and_then(check_message)
    {
        Ok(t) => t,
        Err(msg) => return invalid(&msg),
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
    let mut go_away = false;
    match state.fault_for(&token) {
        None | Some(Fault::Apns { .. }) => {}
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
                Some(retry_after_secs),
            )
        }
        Some(Fault::Fcm {
            status,
            code,
            message,
        }) => {
            return error(
                status,
                Some(&code),
                message.as_deref().unwrap_or("Simulated error."),
                None,
            )
        }
        Some(Fault::Slow { ms }) => sleep_ms(ms).await,
        Some(Fault::Reset) => return Outcome::Reset,
        Some(Fault::RefusedStream) => return Outcome::Refused,
        Some(Fault::GoAway) => go_away = true,
    }
    state.record(Route::Fcm, &token, &parts.headers, doc);
    let ok = json(
        200,
        &j!({"name": format!("projects/{}/messages/0:{}", state.project, uuid::Uuid::new_v4().simple())}),
        &[],
    );
    if go_away {
        Outcome::GoAway(ok)
    } else {
        Outcome::Answer(ok)
    }
}

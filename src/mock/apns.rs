//! The APNs side of the mock: `POST /3/device/<token>`, checked in the order
//! Apple documents its errors (authentication, token, headers, payload), then
//! the fault script, then 200 with an `apns-id`.

use bytes::Bytes;
use hyper::http::request::Parts;
use serde::Deserialize;

use super::{json, Fault, Outcome, Route, State};

/// Each push type and the suffix Apple expects after the bundle id in
/// `apns-topic` ("Sending notification requests to APNs"). Deliberately
/// not `content::PushType::topic_suffix`: the mock checks the daemon
/// against Apple's list, so a mistake there must not be mirrored here.
const PUSH_TYPES: &[(&str, &str)] = &[
    ("alert", ""),
    ("background", ""),
    ("location", ".location-query"),
    ("voip", ".voip"),
    ("complication", ".complication"),
    ("fileprovider", ".pushkit.fileprovider"),
    ("mdm", ""),
    ("liveactivity", ".push-type.liveactivity"),
    ("pushtotalk", ".voip-ptt"),
];

/// Apple keeps a notification for a limited time; an expiration further
/// out than this is refused.
const MAX_EXPIRATION_SECS: i64 = 31 * 24 * 3600;

fn reason(status: u16, reason: &str, apns_id: &str) -> Outcome {
    Outcome::Answer(json(
        status,
        &serde_json::json!({ "reason": reason }),
        &[("apns-id", apns_id.to_owned())],
    ))
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    iat: i64,
}

/// How far ahead of the mock's clock an `iat` may be (clocks are never
/// exactly equal) before the token is refused.
const IAT_LEEWAY_SECS: i64 = 60;

/// Checks the provider JWT; `Err` is the APNs status and reason.
///
/// An `iat` in the future is not documented by Apple; the mock answers
/// `InvalidProviderToken` (a token that claims to be issued later is not
/// stale, which is what `ExpiredProviderToken` says; it fails validation).
/// A clock behind by more than an hour makes a fresh token look older than
/// an hour: `ExpiredProviderToken`, as documented.
fn check_jwt(state: &State, jwt: &str) -> Result<(), (u16, &'static str)> {
    let invalid = (403, "InvalidProviderToken");
    let now = state.now_secs();
    let known = state.jwts.lock().unwrap().get(jwt).copied();
    let iat = match known {
        Some(iat) => iat,
        None => {
            let header = jsonwebtoken::decode_header(jwt).map_err(|_| invalid)?;
            if header.alg != jsonwebtoken::Algorithm::ES256
                || header.kid.as_deref() != Some(state.apns_key.key_id.as_str())
            {
                return Err(invalid);
            }
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
            v.required_spec_claims.clear();
            v.validate_exp = false;
            let claims = jsonwebtoken::decode::<Claims>(jwt, &state.apns_public, &v)
                .map_err(|_| invalid)?
                .claims;
            if claims.iss != state.apns_key.team_id {
                return Err(invalid);
            }
            if claims.iat > now + IAT_LEEWAY_SECS {
                return Err(invalid);
            }
            // A new, unexpired token for the key: Apple allows one per
            // 20 minutes.
            let key = format!("{}/{}", claims.iss, header.kid.unwrap_or_default());
            if now - claims.iat <= state.jwt_max_age_secs {
                let mut updated = state.key_updated.lock().unwrap();
                // The same token arriving on two connections at once is
                // one token: compare with the token that opened the window
                // (the cache of known tokens may not have it yet).
                match updated.get(&key) {
                    Some((_, first)) if first.as_str() == jwt => {}
                    Some((at, _)) if at.elapsed() < state.token_update_window => {
                        state
                            .token_updates_refused
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return Err((429, "TooManyProviderTokenUpdates"));
                    }
                    _ => {
                        updated.insert(key, (std::time::Instant::now(), jwt.to_owned()));
                    }
                }
            }
            state
                .jwts
                .lock()
                .unwrap()
                .insert(jwt.to_owned(), claims.iat);
            claims.iat
        }
    };
    if now - iat > state.jwt_max_age_secs {
        return Err((403, "ExpiredProviderToken"));
    }
    Ok(())
}

fn single<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, &'static str> {
    let mut values = parts.headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err("DuplicateHeaders");
    }
    Ok(first.map(|v| v.to_str().unwrap_or("")))
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(super) async fn handle(
    state: &State,
    parts: &Parts,
    path: &str,
    body: Bytes,
    client_cert: bool,
    at_sandbox: bool,
) -> Outcome {
    let apns_id = parts
        .headers
        .get("apns-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let Some(token) = path.strip_prefix("/3/device/") else {
        return reason(404, "BadPath", &apns_id);
    };
    if parts.method != hyper::Method::POST {
        return reason(405, "MethodNotAllowed", &apns_id);
    }
    let checks = || -> Result<(), (u16, &'static str)> {
        let bad = |r| (400, r);
        for h in [
            "apns-topic",
            "apns-push-type",
            "apns-priority",
            "apns-expiration",
            "apns-collapse-id",
            "apns-id",
            "authorization",
        ] {
            single(parts, h).map_err(bad)?;
        }
        if !client_cert {
            let auth = single(parts, "authorization")
                .map_err(bad)?
                .ok_or((403, "MissingProviderToken"))?;
            let jwt = auth
                .strip_prefix("bearer ")
                .ok_or((403, "InvalidProviderToken"))?;
            check_jwt(state, jwt)?;
        }
        if token.is_empty() {
            return Err(bad("MissingDeviceToken"));
        }
        if token.len() < 64
            || token.len() > 200
            || token.len() % 2 != 0
            || !token.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad("BadDeviceToken"));
        }
        // A production token at the sandbox gateway, or the reverse.
        let sandbox_token = state
            .sandbox_prefixes
            .iter()
            .any(|p| token.starts_with(p.as_str()));
        if at_sandbox != sandbox_token {
            return Err(bad("BadDeviceToken"));
        }
        let push_type = single(parts, "apns-push-type")
            .map_err(bad)?
            .unwrap_or("alert");
        let Some(&(_, suffix)) = PUSH_TYPES.iter().find(|(t, _)| *t == push_type) else {
            return Err(bad("InvalidPushType"));
        };
        let topic = single(parts, "apns-topic")
            .map_err(bad)?
            .ok_or(bad("MissingTopic"))?;
        // Another app's bundle id: the token is not this topic's (what
        // Apple answers when apns-topic belongs to another app). This
        // app's bundle id with the wrong suffix for the push type: the
        // topic is not allowed for it.
        let bundle = PUSH_TYPES
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .find_map(|(_, s)| topic.strip_suffix(s))
            .unwrap_or(topic);
        if bundle != state.topic {
            return Err(bad("DeviceTokenNotForTopic"));
        }
        if topic != format!("{}{suffix}", state.topic) {
            return Err(bad("TopicDisallowed"));
        }
        let priority = single(parts, "apns-priority").map_err(bad)?;
        if let Some(p) = priority {
            if !["10", "5", "1"].contains(&p) {
                return Err(bad("BadPriority"));
            }
        }
        // Background pushes must be sent with priority 5.
        if push_type == "background" && priority.unwrap_or("10") != "5" {
            return Err(bad("BadPriority"));
        }
        if let Some(e) = single(parts, "apns-expiration").map_err(bad)? {
            let now = state.now_secs();
            match e.parse::<i64>() {
                // 0: deliver once, do not store.
                Ok(0) => {}
                Ok(at) if at > 0 && at <= now + MAX_EXPIRATION_SECS => {}
                _ => return Err(bad("BadExpirationDate")),
            }
        }
        if single(parts, "apns-collapse-id")
            .map_err(bad)?
            .is_some_and(|c| c.len() > 64)
        {
            return Err(bad("BadCollapseId"));
        }
        if single(parts, "apns-id")
            .map_err(bad)?
            .is_some_and(|i| !is_uuid(i))
        {
            return Err(bad("BadMessageId"));
        }
        if body.is_empty() {
            return Err(bad("PayloadEmpty"));
        }
        let limit = if push_type == "voip" { 5120 } else { 4096 };
        if body.len() > limit {
            return Err((413, "PayloadTooLarge"));
        }
        Ok(())
    };
    if let Err((status, r)) = checks() {
        return reason(status, r, &apns_id);
    }
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v @ serde_json::Value::Object(_)) if v.get("aps").is_some_and(|a| a.is_object()) => v,
        _ => return reason(400, "BadPayload", &apns_id),
    };
    // A background push wakes the app without showing anything: Apple
    // wants content-available and no alert, sound or badge.
    let is_background = parts
        .headers
        .get("apns-push-type")
        .is_some_and(|v| v == "background");
    if is_background {
        let aps = &payload["aps"];
        if aps["content-available"] != 1
            || ["alert", "sound", "badge"]
                .iter()
                .any(|k| aps.get(k).is_some())
        {
            return reason(400, "BadPayload", &apns_id);
        }
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let retry = |secs: u64| {
        vec![
            ("apns-id", apns_id.clone()),
            ("retry-after", secs.to_string()),
        ]
    };
    let unregistered = |timestamp_ms: i64| {
        Outcome::Answer(json(
            410,
            &serde_json::json!({"reason": "Unregistered", "timestamp": timestamp_ms}),
            &[("apns-id", apns_id.clone())],
        ))
    };
    let fault = state.fault_for(token);
    match &fault {
        Some(Fault::Unregistered) => return unregistered(now_ms),
        Some(Fault::ApnsUnregisteredSince { timestamp_ms }) => return unregistered(*timestamp_ms),
        Some(Fault::Unavailable) => return reason(503, "ServiceUnavailable", &apns_id),
        Some(Fault::RateLimited { retry_after_secs }) => {
            return Outcome::Answer(json(
                429,
                &serde_json::json!({"reason": "TooManyRequests"}),
                &retry(*retry_after_secs),
            ))
        }
        Some(Fault::Apns { status, reason: r }) => return reason(*status, r, &apns_id),
        _ => {}
    }
    let ok = || {
        hyper::Response::builder()
            .status(200)
            .header("apns-id", apns_id)
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("a valid response")
    };
    state
        .accept(Route::Apns, token, &parts.headers, payload, fault, ok)
        .await
}

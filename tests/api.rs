//! What every route of the HTTP API shares, over real HTTP against the app
//! on port 0: the spec and the router agree, keys and scopes, request ids,
//! JSON errors for unknown routes and methods, the body limit, the per-key
//! rate limit, and `pushrelay keys`.

mod common;

use std::collections::BTreeSet;

use common::api::{key, spawn};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

fn spec() -> serde_yaml::Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).expect("openapi.yaml is YAML")
}

/// Every `$ref` in the spec, so each can be resolved.
fn refs(v: &serde_yaml::Value, out: &mut Vec<String>) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                if k.as_str() == Some("$ref") {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    refs(v, out);
                }
            }
        }
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

async fn error_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON error body");
    (status, body["error"].clone())
}

#[sqlx::test(migrations = false)]
async fn the_spec_describes_exactly_the_routes_the_router_serves(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let spec = spec();
    let mut described = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            described.insert((
                method.as_str().unwrap().to_uppercase(),
                path.as_str().unwrap().to_owned(),
            ));
        }
    }
    let served: BTreeSet<(String, String)> = pushrelay::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        described, served,
        "openapi.yaml and api::ROUTES list different routes"
    );

    let mut all = Vec::new();
    refs(&spec, &mut all);
    for r in &all {
        let pointer = r.strip_prefix('#').expect("local refs only");
        let mut node = &spec;
        for part in pointer.trim_start_matches('/').split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "{r} does not resolve");
    }

    // And the router answers each of them (not with "no such route" nor
    // "method not allowed").
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let admin = key(&pool, &["admin"], None).await;
    for (method, path) in &served {
        let path = path.replace("{id}", "1").replace("{user_id}", "someone");
        let response = api
            .client
            .request(method.parse().unwrap(), api.url(&path))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if response.status() == StatusCode::NOT_FOUND {
            let (_, error) = error_of(response).await;
            assert_ne!(error["code"], "no_such_route", "{method} {path}");
        }
    }
}

#[sqlx::test(migrations = false)]
async fn keys_and_scopes_decide_who_may_do_what(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let mut s = settings();
    s.api.key_cache_secs = 0; // a revocation counts at once
    let api = spawn(&pool, s).await;
    let url = api.url(&format!("/v1/notifications/{}", uuid::Uuid::nil()));

    let (status, error) = error_of(api.client.get(&url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error["message"].as_str().unwrap().contains("Bearer"));

    let response = api
        .client
        .get(&url)
        .bearer_auth("prk_not-a-real-key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer",
        "401 says how to authenticate"
    );
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );

    // A devices-only key may not read notifications.
    let devices = key(&pool, &["devices"], None).await;
    let (status, error) = error_of(
        api.client
            .get(&url)
            .bearer_auth(&devices)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        error["message"].as_str().unwrap().contains("read scope"),
        "{error}"
    );

    // A read key may; then it is revoked and may not.
    let read = key(&pool, &["read"], None).await;
    let response = api
        .client
        .get(&url)
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let prefix = &read[..12];
    pushrelay::store::api_keys::revoke(&pool, prefix)
        .await
        .unwrap();
    let response = api
        .client
        .get(&url)
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Keys are stored hashed: no column holds the secret.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(k)::text FROM pushrelay.api_keys k")
            .fetch_all(&pool)
            .await
            .unwrap();
    for row in stored {
        assert!(
            !row.contains(&read[12..]) && !row.contains(&devices[12..]),
            "{row}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn every_answer_has_a_request_id_and_unknown_routes_are_json(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;

    let response = api.client.get(api.url("/v2/nothing")).send().await.unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_such_route"))
    );

    let response = api
        .client
        .get(api.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");

    let (status, error) = error_of(
        api.client
            .delete(api.url("/v1/receipts"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

#[sqlx::test(migrations = false)]
async fn bodies_are_bounded_strict_json(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let mut s = settings();
    s.api.max_body_bytes = 2048;
    let api = spawn(&pool, s).await;
    let send = key(&pool, &["send"], None).await;
    let post = |body: String, content_type: &'static str| {
        api.client
            .post(api.url("/v1/notifications"))
            .bearer_auth(&send)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let big = json!({"app": APP, "user_id": "u1", "body": "x".repeat(4000)}).to_string();
    let (status, error) = error_of(post(big, "application/json").await.unwrap()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );

    let (status, error) =
        error_of(post("{\"app\": ".into(), "application/json").await.unwrap()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );

    let typo = json!({"app": APP, "user_id": "u1", "body": "hi", "ttl_secs": 60}).to_string();
    let (status, error) = error_of(post(typo, "application/json").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["field"], "ttl_secs", "{error}");

    let (status, error) = error_of(
        post("app=bank".into(), "application/x-www-form-urlencoded")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    let enqueued: i64 = sqlx::query_scalar("SELECT count(*) FROM pushrelay.notifications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(enqueued, 0, "nothing refused was enqueued");
}

#[sqlx::test(migrations = false)]
async fn a_key_over_its_rate_is_told_when_to_retry(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let slow = pushrelay::store::api_keys::create(
        &pool,
        &pushrelay::store::api_keys::NewKey {
            name: "slow".into(),
            scopes: vec!["read".parse().unwrap()],
            apps: None,
            rate_per_sec: Some(2),
        },
    )
    .await
    .unwrap()
    .1;
    let other = key(&pool, &["read"], None).await;
    let url = api.url(&format!("/v1/notifications/{}", uuid::Uuid::nil()));

    let mut limited = None;
    for _ in 0..20 {
        let response = api
            .client
            .get(&url)
            .bearer_auth(&slow)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("20 requests at once exceed 2 a second");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let (_, error) = error_of(response).await;
    assert_eq!(error["code"], "rate_limited");
    // Another key is not slowed by it.
    let response = api
        .client
        .get(&url)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

fn database_url(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    )
}

#[sqlx::test(migrations = false)]
async fn keys_are_created_listed_and_revoked_from_the_command_line(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool: PgPool = pool(&opts).await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PUSHRELAY__DATABASE__URL", database_url(&opts))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let out = run(&[
        "keys",
        "create",
        "--name",
        "billing",
        "--scopes",
        "send,read",
        "--apps",
        "demo",
    ]);
    let secret = out.lines().last().unwrap().trim().to_owned();
    assert!(secret.starts_with("prk_") && secret.len() > 40, "{out}");

    let listing = run(&["keys", "list"]);
    assert!(
        listing.contains("billing") && listing.contains(&secret[..12]),
        "{listing}"
    );
    assert!(!listing.contains(&secret), "the secret is shown only once");

    let found = pushrelay::store::api_keys::find(&pool, &secret)
        .await
        .unwrap()
        .expect("the printed secret is a working key");
    assert_eq!(found.apps.as_deref(), Some(&["demo".to_owned()][..]));

    run(&["keys", "revoke", &secret[..12]]);
    assert!(pushrelay::store::api_keys::find(&pool, &secret)
        .await
        .unwrap()
        .is_none());
    assert!(!run(&["keys", "list"]).contains("billing"));
    assert!(run(&["keys", "list", "--all"]).contains("billing"));
}

#[sqlx::test(migrations = false)]
async fn text_the_database_cannot_store_is_the_callers_error(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Found by the spec fuzzer: a NUL character in a parameter used to
    // reach PostgreSQL and come back as a 500.
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let admin = key(&pool, &["admin"], None).await;
    for path in [
        "/v1/users/a%00b/notifications",
        "/v1/users/a%00b/devices",
        "/v1/notifications?app=bank&idempotency_key=a%00b",
    ] {
        let response = api
            .client
            .get(api.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {error}");
        assert_eq!(error["code"], "invalid_text", "{path}");
    }
    let response = api
        .client
        .get(api.url("/v1/notifications?app=a%00b&idempotency_key=k"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_app"))
    );
}

//! The notifications routes over real HTTP against the test's own
//! database: enqueue (single, repeated, batch), the support view, lookup
//! by idempotency key, cancellation before and during sending, and a
//! user's notifications page by page.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::api::{key, spawn, TestApi};
use common::*;
use pushrelay::model::Platform;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

async fn call(
    api: &TestApi,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> (StatusCode, Value) {
    let headers: Vec<(&str, &str)> = idempotency_key
        .map(|k| ("Idempotency-Key", k))
        .into_iter()
        .collect();
    api.call(key, method, path, body.as_ref(), &headers).await
}

async fn post(api: &TestApi, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    call(api, key, reqwest::Method::POST, path, Some(body), None).await
}

async fn get(api: &TestApi, key: &str, path: &str) -> (StatusCode, Value) {
    call(api, key, reqwest::Method::GET, path, None, None).await
}

async fn rows(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM pushrelay.notifications").await
}

/// Waits (bounded, only so a broken build cannot hang) until `check`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "waited 30 s for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn enqueue_then_read_it_back_every_way(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send", "read"], None).await;

    let (status, created) = post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "bank", "user_id": "alice", "template": "transfer_received",
               "data": {"amount": "12.00", "currency": "EUR", "sender": "Bob"},
               "idempotency_key": "transfer-1", "ttl_seconds": 600}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["state"], "pending");
    assert_eq!(created["ttl_seconds"], 600);
    assert_eq!(created["idempotency_key"], "transfer-1");

    let (status, shown) = get(&api, &k, &format!("/v1/notifications/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["id"], created["id"]);
    assert_eq!(shown["created_at"], created["created_at"]);
    assert_eq!(shown["send_at"], created["send_at"]);
    // Not from a campaign: both views say so rather than leave it out.
    for view in [&created, &shown] {
        assert_eq!(view.get("campaign_id"), Some(&Value::Null), "{view}");
        assert_eq!(view.get("campaign_name"), Some(&Value::Null), "{view}");
    }
    assert_eq!(shown["expires_at"], created["expires_at"]);
    assert_eq!(shown["template"], "transfer_received");

    let (status, found) = get(
        &api,
        &k,
        "/v1/notifications?app=bank&idempotency_key=transfer-1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["id"], created["id"]);
    let (status, err) = get(&api, &k, "/v1/notifications?app=bank&idempotency_key=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    let (status, err) = get(&api, &k, "/v1/notifications?idempotency_key=transfer-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "app");

    let (status, page) = get(&api, &k, "/v1/users/alice/notifications").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], created["id"]);
    assert_eq!(page["next_cursor"], Value::Null);

    let (status, err) = get(
        &api,
        &k,
        &format!("/v1/notifications/{}", uuid::Uuid::nil()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["error"]["code"], "not_found");
}

#[sqlx::test(migrations = false)]
async fn a_repeat_returns_the_original_and_a_reused_key_is_refused(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send"], None).await;
    let body = json!({"app": "bank", "user_id": "alice", "body": "Your code is 123456",
                      "data": {"a": "1", "b": "2"}});

    let (status, first) = call(
        &api,
        &k,
        reqwest::Method::POST,
        "/v1/notifications",
        Some(body.clone()),
        Some("code-1"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");

    // The same request, key in the header again...
    let (status, again) = call(
        &api,
        &k,
        reqwest::Method::POST,
        "/v1/notifications",
        Some(body.clone()),
        Some("code-1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    // ... and in the field, with the data's keys in another order.
    let (status, again) = post(
        &api,
        &k,
        "/v1/notifications",
        json!({"idempotency_key": "code-1", "data": {"b": "2", "a": "1"},
               "body": "Your code is 123456", "user_id": "alice", "app": "bank"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(rows(&pool).await, 1);

    // The same key with another body.
    let mut other = body.clone();
    other["body"] = json!("Your code is 999999");
    let (status, err) = call(
        &api,
        &k,
        reqwest::Method::POST,
        "/v1/notifications",
        Some(other),
        Some("code-1"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "idempotency_key_reused");
    assert_eq!(rows(&pool).await, 1);

    // Header and field disagree.
    let mut both = body.clone();
    both["idempotency_key"] = json!("code-2");
    let (status, err) = call(
        &api,
        &k,
        reqwest::Method::POST,
        "/v1/notifications",
        Some(both),
        Some("code-3"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "idempotency_key");

    // A producer's row (no request digest) with the key counts as the
    // original.
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, body, idempotency_key)
         VALUES ('bank', 'bob', 'from SQL', 'sql-1')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, repeat) = post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "bank", "user_id": "bob", "body": "from SQL", "idempotency_key": "sql-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{repeat}");
    assert_eq!(rows(&pool).await, 2);
}

#[sqlx::test(migrations = false)]
async fn unknown_app_template_and_bad_fields_are_named(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send"], None).await;
    for (body, code, field) in [
        (
            json!({"app": "shop", "user_id": "u", "body": "b"}),
            "unknown_app",
            "app",
        ),
        (
            json!({"app": "bank", "user_id": "u", "template": "no_such_template"}),
            "unknown_template",
            "template",
        ),
        (
            json!({"app": "bank", "user_id": "u", "device_ids": [1], "body": "b"}),
            "invalid_field",
            "user_id",
        ),
        (
            json!({"app": "bank", "user_id": "u", "body": "b", "data": {"google.x": "1"}}),
            "invalid_field",
            "data",
        ),
        (
            json!({"app": "bank", "user_id": "u", "body": "b", "ttl_seconds": 3000000}),
            "invalid_field",
            "ttl_seconds",
        ),
        (
            json!({"app": "bank", "user_id": "u", "body": "b", "options": {"badges": 1}}),
            "invalid_field",
            "options.badges",
        ),
        (
            json!({"app": "bank", "user_id": "u", "body": "b", "colour": "red"}),
            "invalid_field",
            "colour",
        ),
    ] {
        let (status, err) = post(&api, &k, "/v1/notifications", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {err}");
        assert_eq!(err["error"]["code"], code, "{body} → {err}");
        assert_eq!(err["error"]["field"], field, "{body} → {err}");
    }
    let (_, err) = post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "shop", "user_id": "u", "body": "b"}),
    )
    .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"shop\""),
        "{err}"
    );
    assert_eq!(rows(&pool).await, 0);
}

#[sqlx::test(migrations = false)]
async fn a_batch_answers_per_item_and_inserts_the_valid_ones(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send"], None).await;
    let valid = |n: u32| json!({"app": "bank", "user_id": format!("u{n}"), "body": "hello"});
    let items = vec![
        valid(0),
        json!({"app": "bank", "user_id": "u", "body": "b", "colour": "red"}),
        json!({"app": "bank", "user_id": "u", "device_ids": [1, 2], "body": "b"}),
        json!({"app": "bank", "user_id": "u", "body": "b", "data": {"from": "me"}}),
        json!({"app": "bank", "user_id": "u", "body": "b", "ttl_seconds": -1}),
        json!({"app": "bank", "user_id": "u", "template": "nope"}),
        json!({"app": "bank", "user_id": "dup", "body": "once", "idempotency_key": "k1"}),
        valid(1),
        json!({"app": "bank", "user_id": "dup", "body": "once", "idempotency_key": "k1"}),
        json!({"app": "bank", "user_id": "dup", "body": "other", "idempotency_key": "k1"}),
        json!("not an object"),
    ];
    let (status, body) = post(
        &api,
        &k,
        "/v1/notifications/batch",
        json!({ "notifications": items }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), items.len());
    let expect: &[(u16, Option<&str>)] = &[
        (201, None),
        (422, Some("notifications[1].colour")),
        (422, Some("notifications[2].user_id")),
        (422, Some("notifications[3].data")),
        (422, Some("notifications[4].ttl_seconds")),
        (422, Some("notifications[5].template")),
        (201, None),
        (201, None),
        (200, None),
        (422, Some("notifications[9].idempotency_key")),
        (422, Some("notifications[10]")),
    ];
    for (i, (r, (status, field))) in results.iter().zip(expect).enumerate() {
        assert_eq!(r["index"], i, "{r}");
        assert_eq!(r["status"], *status, "item {i}: {r}");
        match field {
            Some(f) => assert_eq!(r["error"]["field"], *f, "item {i}: {r}"),
            None => assert!(r["notification"]["id"].is_string(), "item {i}: {r}"),
        }
    }
    assert_eq!(results[9]["error"]["code"], "idempotency_key_reused");
    assert_eq!(
        results[8]["notification"]["id"],
        results[6]["notification"]["id"]
    );
    assert_eq!(rows(&pool).await, 3);
}

#[sqlx::test(migrations = false)]
async fn a_batch_over_the_limit_is_refused_whole(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send"], None).await;
    let items: Vec<Value> = (0..1001)
        .map(|i| json!({"app": "bank", "user_id": format!("u{i}"), "body": "b"}))
        .collect();
    let (status, err) = post(
        &api,
        &k,
        "/v1/notifications/batch",
        json!({ "notifications": items }),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert_eq!(err["error"]["field"], "notifications");
    assert!(err["error"]["message"].as_str().unwrap().contains("1000"));
    assert_eq!(rows(&pool).await, 0);

    // A full batch of 1,000 goes in.
    let (status, body) = post(
        &api,
        &k,
        "/v1/notifications/batch",
        json!({ "notifications": items[..1000] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == 201));
    assert_eq!(rows(&pool).await, 1000);
}

#[sqlx::test(migrations = false)]
async fn cancelled_before_sending_it_is_never_sent(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    add_device(&pool, "alice", Platform::Ios, &ios_token("a1", 1)).await;
    add_device(&pool, "bob", Platform::Ios, &ios_token("b0", 1)).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send", "read"], None).await;

    let (_, n) = post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "bank", "user_id": "alice", "body": "never"}),
    )
    .await;
    let id = n["id"].as_str().unwrap();
    let (status, first) = post(
        &api,
        &k,
        &format!("/v1/notifications/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["state"], "cancelled");
    assert_eq!(first["cancelled_deliveries"], 0);
    assert_eq!(first["in_flight"], 0);
    let (status, second) = post(
        &api,
        &k,
        &format!("/v1/notifications/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second, first, "a second cancel reports the same");

    // A worker started now sends bob's notification, never alice's.
    let daemon = start(&pool, settings());
    post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "bank", "user_id": "bob", "body": "marker"}),
    )
    .await;
    wait_for(&pool, DELIVERED, 1).await;
    wait_for(&pool, OPEN, 0).await;
    let simulator = daemon.providers.simulator().unwrap();
    assert_eq!(simulator.attempts_for(&ios_token("a1", 1)), 0);
    let (_, shown) = get(&api, &k, &format!("/v1/notifications/{id}")).await;
    assert_eq!(shown["state"], "cancelled");
    assert_eq!(shown["deliveries"], json!([]));
    assert!(shown["cancelled_at"].is_string());
    stop(daemon).await;

    let (status, _) = post(
        &api,
        &k,
        &format!("/v1/notifications/{}/cancel", uuid::Uuid::nil()),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = false)]
async fn cancelled_while_waiting_for_a_retry_it_is_not_retried(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    // Rate limited once with Retry-After 1 s: a retry waits a second.
    let token = ios_token("ca11", 1);
    add_device(&pool, "alice", Platform::Ios, &token).await;
    add_device(&pool, "bob", Platform::Ios, &ios_token("b0", 1)).await;
    let api = spawn(&pool, settings()).await;
    let daemon = start(&pool, settings());
    let k = key(&pool, &["send", "read"], None).await;

    let (_, n) = post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "bank", "user_id": "alice", "body": "hi"}),
    )
    .await;
    let id = n["id"].as_str().unwrap();
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'pending' AND attempts = 1",
        1,
    )
    .await;
    let (status, c) = post(
        &api,
        &k,
        &format!("/v1/notifications/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["state"], "dispatched");
    assert_eq!(c["cancelled_deliveries"], 1);
    assert_eq!(c["in_flight"], 0);

    // Past the time the retry was due, and with the worker demonstrably
    // sending (bob's marker), alice's device saw one try only.
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE next_attempt_at < now() - interval '100 ms'",
        1,
    )
    .await;
    post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "bank", "user_id": "bob", "body": "marker"}),
    )
    .await;
    wait_for(&pool, DELIVERED, 1).await;
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(
        daemon.providers.simulator().unwrap().attempts_for(&token),
        1
    );
    let (_, shown) = get(&api, &k, &format!("/v1/notifications/{id}")).await;
    let d = &shown["deliveries"][0];
    assert_eq!(d["state"], "cancelled", "{shown}");
    assert_eq!(d["history"].as_array().unwrap().len(), 1, "{shown}");
    assert!(d["cancelled_at"].is_string());
    assert!(d["history"][0]["started_at"].as_str().unwrap() < d["cancelled_at"].as_str().unwrap());
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn cancelled_while_in_flight_it_finishes_its_try_and_is_not_retried(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    // The simulator never answers this token: the try stays in flight
    // until the send timeout, which would normally be retried.
    let token = ios_token("510e", 1);
    add_device(&pool, "alice", Platform::Ios, &token).await;
    let api = spawn(&pool, settings()).await;
    let daemon = start(&pool, settings());
    let k = key(&pool, &["send", "read"], None).await;
    let (_, n) = post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "bank", "user_id": "alice", "body": "hi"}),
    )
    .await;
    let id = n["id"].as_str().unwrap();
    let simulator = daemon.providers.simulator().unwrap();
    until("the first try to reach the provider", || {
        simulator.attempts_for(&token) == 1
    })
    .await;
    let (status, c) = post(
        &api,
        &k,
        &format!("/v1/notifications/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["in_flight"], 1, "{c}");
    assert_eq!(c["cancelled_deliveries"], 0, "{c}");

    wait_for(&pool, OPEN, 0).await;
    let (_, shown) = get(&api, &k, &format!("/v1/notifications/{id}")).await;
    let d = &shown["deliveries"][0];
    assert_eq!(d["state"], "cancelled", "{shown}");
    assert!(
        d["last_error"].as_str().unwrap().contains("not retried"),
        "{shown}"
    );
    assert_eq!(d["history"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(simulator.attempts_for(&token), 1);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_users_notifications_page_newest_first_without_repeats(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send", "read"], None).await;
    // Some one by one (distinct times), some in one batch (one time).
    let mut ids = Vec::new();
    for i in 0..4 {
        let (_, n) = post(
            &api,
            &k,
            "/v1/notifications",
            json!({"app": "bank", "user_id": "alice", "body": format!("single {i}")}),
        )
        .await;
        ids.push(n["id"].as_str().unwrap().to_owned());
    }
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"app": "bank", "user_id": "alice", "body": format!("batch {i}")}))
        .collect();
    post(
        &api,
        &k,
        "/v1/notifications/batch",
        json!({ "notifications": batch.clone() }),
    )
    .await;
    post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "bank", "user_id": "bob", "body": "not alice's"}),
    )
    .await;

    let mut seen: Vec<(String, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users/alice/notifications?limit=4&cursor={c}"),
            None => "/v1/users/alice/notifications?limit=4".to_owned(),
        };
        let (status, page) = get(&api, &k, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push((
                item["created_at"].as_str().unwrap().to_owned(),
                item["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 9);
    assert_eq!(seen.iter().map(|s| &s.1).collect::<HashSet<_>>().len(), 9);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        t(&b.0).cmp(&t(&a.0)).then(b.1.cmp(&a.1))
    });
    assert_eq!(seen, sorted, "newest first");
    // The last single enqueue is newer than nothing of the batch.
    assert!(seen[5..].iter().any(|s| s.1 == ids[3]));

    let (status, err) = get(&api, &k, "/v1/users/alice/notifications?cursor=garbage!").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "cursor");
    let (status, err) = get(&api, &k, "/v1/users/alice/notifications?limit=201").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "limit");
}

#[sqlx::test(migrations = false)]
async fn keys_see_and_do_only_what_they_may(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let sender = key(&pool, &["send", "read"], None).await;
    let reader = key(&pool, &["read"], None).await;
    let elsewhere = key(&pool, &["send", "read"], Some(&["shop"])).await;
    let body = json!({"app": "bank", "user_id": "alice", "body": "hi"});

    let (status, err) = post(&api, &reader, "/v1/notifications", body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    let (status, err) = post(&api, &elsewhere, "/v1/notifications", body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(rows(&pool).await, 0);

    let (_, n) = post(&api, &sender, "/v1/notifications", body.clone()).await;
    let id = n["id"].as_str().unwrap();
    let (status, _) = get(&api, &reader, &format!("/v1/notifications/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    // Another app's key learns nothing, not even that it exists.
    let (status, err) = get(&api, &elsewhere, &format!("/v1/notifications/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    let (status, _) = post(
        &api,
        &elsewhere,
        &format!("/v1/notifications/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = get(&api, &elsewhere, "/v1/users/alice/notifications").await;
    assert_eq!(page["items"], json!([]));
    let (status, _) = post(
        &api,
        &reader,
        &format!("/v1/notifications/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, shown) = get(&api, &reader, &format!("/v1/notifications/{id}")).await;
    assert_eq!(shown["state"], "pending");
}

#[sqlx::test(migrations = false)]
async fn the_support_view_shows_what_devices_reported(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let token = ios_token("a1", 7);
    add_device(&pool, "alice", Platform::Ios, &token).await;
    let api = spawn(&pool, settings()).await;
    let daemon = start(&pool, settings());
    let k = key(&pool, &["send", "read"], None).await;
    let (_, n) = post(
        &api,
        &k,
        "/v1/notifications",
        json!({"app": "bank", "user_id": "alice", "body": "hi"}),
    )
    .await;
    let id = n["id"].as_str().unwrap();
    wait_for(&pool, DELIVERED, 1).await;
    // What the receipts endpoint writes.
    sqlx::query(
        "INSERT INTO pushrelay.device_receipts (delivery_id, event, notification_id, app, occurred_at)
         SELECT id, e, notification_id, app, now() FROM pushrelay.deliveries,
                unnest(ARRAY['received', 'opened']) e",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (_, shown) = get(&api, &k, &format!("/v1/notifications/{id}")).await;
    assert_eq!(shown["state"], "dispatched");
    assert_eq!(shown["received"], 1);
    assert_eq!(shown["opened"], 1);
    let d = &shown["deliveries"][0];
    assert_eq!(d["state"], "delivered");
    let events: Vec<&str> = d["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert!(events.contains(&"received") && events.contains(&"opened"));
    assert!(d["history"][0]["latency_ms"].is_number());
    // Tokens are masked.
    assert!(!shown.to_string().contains(&token));
    assert_eq!(d["token"], pushrelay::model::mask_token(&token), "{shown}");
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn concurrent_single_enqueues_each_get_their_own_answer(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = std::sync::Arc::new(spawn(&pool, settings()).await);
    let k = key(&pool, &["send"], None).await;
    let mut requests = tokio::task::JoinSet::new();
    // 100 different notifications and 20 copies of one request, at once:
    // they share statements, and the copies still make one notification.
    for i in 0..120 {
        let (api, k) = (api.clone(), k.clone());
        requests.spawn(async move {
            let body = if i < 100 {
                json!({"app": "bank", "user_id": format!("u{i}"), "body": "hi"})
            } else {
                json!({"app": "bank", "user_id": "same", "body": "hi", "idempotency_key": "once"})
            };
            let (status, n) = post(&api, &k, "/v1/notifications", body).await;
            (i, status, n["id"].as_str().unwrap_or_default().to_owned())
        });
    }
    let mut ids = HashSet::new();
    let mut copies = Vec::new();
    while let Some(r) = requests.join_next().await {
        let (i, status, id) = r.unwrap();
        if i < 100 {
            assert_eq!(status, StatusCode::CREATED);
            ids.insert(id);
        } else {
            copies.push((status, id));
        }
    }
    assert_eq!(ids.len(), 100);
    let created = copies.iter().filter(|c| c.0 == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{copies:?}");
    assert!(copies
        .iter()
        .all(|c| c.1 == copies[0].1 && (c.0 == StatusCode::OK || c.0 == StatusCode::CREATED)));
    assert_eq!(rows(&pool).await, 101);
}

#[sqlx::test(migrations = false)]
async fn a_row_only_the_database_refuses_fails_alone(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send"], None).await;
    // Data the Rust check measures small (serde prints 1e300 in 5
    // characters) but PostgreSQL's numeric prints in 301, over the table's
    // 4,096-byte limit: the statement fails, and the items are tried one
    // by one.
    let huge: serde_json::Map<String, Value> =
        (0..14).map(|i| (format!("n{i}"), json!(1e300))).collect();
    let items = json!([
        {"app": "bank", "user_id": "a", "body": "ok", "idempotency_key": "a"},
        {"app": "bank", "user_id": "b", "body": "no", "data": huge},
        {"app": "bank", "user_id": "c", "body": "ok"},
    ]);
    let (status, body) = post(
        &api,
        &k,
        "/v1/notifications/batch",
        json!({ "notifications": items }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let statuses: Vec<&Value> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert_eq!(statuses, [&json!(201), &json!(422), &json!(201)], "{body}");
    let err = &body["results"][1]["error"];
    assert_eq!(err["code"], "rejected");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("notifications_data_at_most_4096_bytes"),
        "{err}"
    );
    assert_eq!(rows(&pool).await, 2);
}

#[sqlx::test(migrations = false)]
async fn cancelled_deliveries_handed_back_are_never_sent(_: PgPoolOptions, opts: PgConnectOptions) {
    use pushrelay::model::Priority;
    use pushrelay::store::{deliveries, workers};
    let pool = pool(&opts).await;
    let device = add_device(&pool, "alice", Platform::Ios, &ios_token("a1", 1)).await;
    let id = pushrelay::store::notifications::enqueue(
        &pool,
        &pushrelay::store::notifications::NewNotification {
            app: APP.into(),
            user_id: Some("alice".into()),
            body: Some("hi".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // One delivery handed back unsent while cancelled (due again), one
    // held by a process that died.
    let device2 = add_device(&pool, "alice", Platform::Ios, &ios_token("a1", 2)).await;
    sqlx::query(
        "INSERT INTO pushrelay.deliveries
             (notification_id, device_id, app, platform, priority, expires_at, state, tries,
              lease_owner, cancelled_at)
         VALUES ($1, $2, 'bank', 'ios', 'urgent', now() + interval '1 hour', 'pending', 0, NULL, now()),
                ($1, $3, 'bank', 'ios', 'urgent', now() + interval '1 hour', 'sending', 1, 'gone', now())",
    )
    .bind(id)
    .bind(device)
    .bind(device2)
    .execute(&pool)
    .await
    .unwrap();

    let claimed = deliveries::claim_retries(&pool, Platform::Ios, Priority::Urgent, 10, "me", &[])
        .await
        .unwrap();
    assert!(claimed.is_empty(), "{claimed:?}");
    let rescued = workers::rescue(&pool, Duration::from_secs(30), 10, &[])
        .await
        .unwrap();
    assert_eq!(rescued.rescued, 1);
    let states: Vec<(String, i32)> =
        sqlx::query_as("SELECT state, attempts FROM pushrelay.deliveries ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(states, [("cancelled".into(), 0), ("cancelled".into(), 0)]);
    let retry_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT retry_at FROM pushrelay.attempts WHERE outcome = 'lost'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(retry_at, None, "a cancelled delivery is not re-queued");
}

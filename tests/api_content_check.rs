//! The content rules where the database no longer checks them: rows the
//! HTTP API writes (they carry the request's digest) skip the per-row
//! content trigger (migration 0007), because the API checked them in Rust
//! already. These tests hold the Rust check to that promise: everything the
//! trigger refuses, the check refuses too, and over HTTP each refusal names
//! the field; an update of an API-written row is still checked by the
//! database. (Producers' SQL inserts keep the trigger: tests/content.rs.)

mod common;

use common::api::{key, spawn, TestApi};
use common::*;
use pushrelay::store::notifications::{check, NewNotification};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Data and options the trigger refuses, with the field the API names
/// (inside `notifications[i].` for a batch item).
fn refused_cases() -> Vec<(Value, Value, &'static str)> {
    let data = |k: &str| {
        (
            Value::Object([(k.into(), json!("1"))].into_iter().collect()),
            json!({}),
            "data",
        )
    };
    let opt = |o: Value, field: &'static str| (json!({"amount": "12.00"}), o, field);
    vec![
        data("from"),
        data("message_type"),
        data("notification"),
        data("google.c.a.e"),
        data("GOOGLE_x"),
        data("gcm.n.e"),
        data("Gcm_id"),
        // PostgreSQL lowercases the dotted capital I to a plain i.
        data("NOTİFİCATİON"),
        opt(json!(["badge", 1]), "options"),
        opt(json!("badge"), "options"),
        opt(json!({"badges": 1}), "options.badges"),
        opt(json!({"push_type": "fax"}), "options.push_type"),
        opt(json!({"push_type": 1}), "options.push_type"),
        opt(json!({"badge": -1}), "options.badge"),
        opt(json!({"badge": "one"}), "options.badge"),
        opt(json!({"badge": 1.5}), "options.badge"),
        opt(json!({"badge": 2_147_483_648u32}), "options.badge"),
        opt(json!({"badge": 4_294_967_295u32}), "options.badge"),
        opt(json!({"badge": null}), "options.badge"),
        opt(
            json!({"notification_count": -2}),
            "options.notification_count",
        ),
        opt(
            json!({"notification_count": 3_000_000_000u32}),
            "options.notification_count",
        ),
        opt(json!({"sound": 1}), "options.sound"),
        opt(json!({"sound": null}), "options.sound"),
        opt(json!({"sound": [1, "default", 0.5]}), "options.sound"),
        opt(
            json!({"sound": {"critical": 1, "name": "a", "volume": 2}}),
            "options.sound",
        ),
        opt(
            json!({"sound": {"critical": 2, "name": "a", "volume": 0.5}}),
            "options.sound",
        ),
        opt(
            json!({"sound": {"critical": 1, "name": 5, "volume": 0.5}}),
            "options.sound",
        ),
        opt(
            json!({"sound": {"critical": 1, "name": "a"}}),
            "options.sound",
        ),
        opt(
            json!({"sound": {"critical": 1, "name": "a", "volume": "0.5"}}),
            "options.sound",
        ),
        opt(
            json!({"sound": {"critical": 1, "name": "a", "volume": 0.5, "loud": true}}),
            "options.sound",
        ),
        opt(json!({"mutable_content": "yes"}), "options.mutable_content"),
        opt(json!({"content_available": 1}), "options.content_available"),
        opt(json!({"data_only": null}), "options.data_only"),
        opt(
            json!({"interruption_level": "loud"}),
            "options.interruption_level",
        ),
        opt(json!({"relevance_score": 2}), "options.relevance_score"),
        opt(json!({"relevance_score": -0.1}), "options.relevance_score"),
        opt(json!({"relevance_score": "0.5"}), "options.relevance_score"),
        opt(json!({"color": "red"}), "options.color"),
        opt(json!({"color": "#12345g"}), "options.color"),
        opt(json!({"color": "#1234567"}), "options.color"),
        opt(json!({"image": "http://x/i.png"}), "options.image"),
        opt(json!({"image": "HTTPS://x/i.png"}), "options.image"),
        opt(json!({"subtitle": 5}), "options.subtitle"),
        opt(json!({"thread_id": {"a": 1}}), "options.thread_id"),
        opt(json!({"channel_id": null}), "options.channel_id"),
        opt(json!({"analytics_label": "a b"}), "options.analytics_label"),
        opt(json!({"analytics_label": ""}), "options.analytics_label"),
        opt(
            json!({"analytics_label": "x".repeat(51)}),
            "options.analytics_label",
        ),
        opt(json!({"analytics_label": "é"}), "options.analytics_label"),
    ]
}

/// Data and options both accept.
fn accepted_cases() -> Vec<(Value, Value)> {
    vec![
        (
            json!({"Fromage": "1", "sender": "googler", "x": {"from": 1}}),
            json!({}),
        ),
        (
            json!({}),
            json!({"badge": 0, "notification_count": 2_147_483_647}),
        ),
        (
            json!({"amount": "12.00"}),
            json!({
                "push_type": "alert", "subtitle": "Sub", "badge": 3,
                "sound": {"critical": 1, "name": "alarm.caf", "volume": 1},
                "thread_id": "t", "category": "C", "mutable_content": true,
                "content_available": false, "interruption_level": "time-sensitive",
                "relevance_score": 0, "target_content_id": "x",
                "image": "https://cdn.example.com/i.png", "channel_id": "c", "icon": "i",
                "color": "#A1b2C3", "analytics_label": "a-b_c.d~e%f", "data_only": false
            }),
        ),
        (json!({}), json!({"sound": "none"})),
    ]
}

/// A producer's insert: no digest, so the trigger checks it.
async fn sql_insert(pool: &PgPool, data: &Value, options: &Value) -> Result<(), String> {
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, body, data, options)
         VALUES ('bank', 'u', 'b', $1, $2)",
    )
    .bind(data)
    .bind(options)
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn rust_check(data: &Value, options: &Value) -> Result<(), String> {
    check(&NewNotification {
        app: APP.into(),
        user_id: Some("u".into()),
        body: Some("b".into()),
        data: data.clone(),
        options: options.clone(),
        ..Default::default()
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[sqlx::test(migrations = false)]
async fn the_rust_check_refuses_everything_the_content_trigger_refuses(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    for (data, options, _) in refused_cases() {
        let db = sql_insert(&pool, &data, &options).await;
        assert!(db.is_err(), "the trigger takes {data} {options}");
        let rust = rust_check(&data, &options);
        assert!(
            rust.is_err(),
            "the trigger refuses {data} {options} ({}), the Rust check takes it",
            db.unwrap_err()
        );
    }
    for (data, options) in accepted_cases() {
        sql_insert(&pool, &data, &options).await.unwrap();
        rust_check(&data, &options).unwrap();
    }
}

async fn post(api: &TestApi, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    api.call(key, reqwest::Method::POST, path, Some(&body), &[])
        .await
}

fn item(data: &Value, options: &Value) -> Value {
    json!({"app": "bank", "user_id": "alice", "body": "hi", "data": data, "options": options})
}

#[sqlx::test(migrations = false)]
async fn a_reserved_data_key_and_each_bad_option_are_refused_naming_the_field(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send"], None).await;
    let cases = refused_cases();

    for (data, options, field) in &cases {
        let (status, body) = post(&api, &k, "/v1/notifications", item(data, options)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{data} {options}: {body}"
        );
        assert_eq!(body["error"]["code"], "invalid_field", "{body}");
        assert_eq!(body["error"]["field"], *field, "{data} {options}: {body}");
    }

    // The same in one batch, with one good item last.
    let mut items: Vec<Value> = cases.iter().map(|(d, o, _)| item(d, o)).collect();
    items.push(item(&json!({"amount": "12.00"}), &json!({"badge": 1})));
    let (status, body) = post(
        &api,
        &k,
        "/v1/notifications/batch",
        json!({ "notifications": items }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    for (i, (data, options, field)) in cases.iter().enumerate() {
        let r = &results[i];
        assert_eq!(r["status"], 422, "{data} {options}: {r}");
        assert_eq!(r["error"]["code"], "invalid_field", "{r}");
        assert_eq!(
            r["error"]["field"],
            format!("notifications[{i}].{field}"),
            "{data} {options}: {r}"
        );
    }
    assert_eq!(
        results[cases.len()]["status"],
        201,
        "{}",
        results[cases.len()]
    );
    // Only the good one is stored, and the API marked it as checked.
    let stored = count(
        &pool,
        "SELECT count(*) FROM pushrelay.notifications WHERE request_sha256 IS NOT NULL",
    )
    .await;
    assert_eq!(stored, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.notifications").await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn an_update_of_a_row_the_api_wrote_is_still_checked(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send"], None).await;
    let (status, body) = post(
        &api,
        &k,
        "/v1/notifications",
        item(&json!({"amount": "12.00"}), &json!({"badge": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id: uuid::Uuid = body["id"].as_str().unwrap().parse().unwrap();
    for (set, value, says) in [
        ("options", json!({"badge": -1}), "badge"),
        ("data", json!({"from": "me"}), "reserved"),
    ] {
        let err = sqlx::query(&format!(
            "UPDATE pushrelay.notifications SET {set} = $1 WHERE id = $2"
        ))
        .bind(&value)
        .bind(id)
        .execute(&pool)
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains(says), "{set} = {value}: {err}");
    }
}

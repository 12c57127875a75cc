//! The batch endpoint's answer: per item the notification's id, app,
//! state, times and idempotency key (the spec's `Notification`), for a new
//! notification and for a repeat alike; a single enqueue still answers with
//! the whole support view.

mod common;

use common::api::{key, spawn};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrations = false)]
async fn a_batch_item_answers_with_the_notification_not_the_support_view(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["send", "read"], None).await;
    let (api, k) = (&api, &k);
    let post = |path: &'static str, body: Value| async move {
        api.call(k, reqwest::Method::POST, path, Some(&body), &[])
            .await
    };
    let items = json!([
        {"app": "bank", "user_id": "alice", "body": "hi", "idempotency_key": "k1",
         "data": {"amount": "12.00"}, "send_at": "2099-01-01T00:00:00Z"},
        {"app": "bank", "user_id": "bob", "body": "hi"},
    ]);
    let (status, first) = post("/v1/notifications/batch", json!({ "notifications": items })).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // The same again: the first item is a repeat, the second new.
    let (_, again) = post("/v1/notifications/batch", json!({ "notifications": items })).await;

    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let expected = [
        "app",
        "created_at",
        "id",
        "idempotency_key",
        "send_at",
        "state",
    ];
    for (answer, statuses) in [(&first, [201, 201]), (&again, [200, 201])] {
        for (i, r) in answer["results"].as_array().unwrap().iter().enumerate() {
            assert_eq!(r["status"], statuses[i], "{r}");
            assert_eq!(keys(r), ["index", "notification", "status"], "{r}");
            let n = &r["notification"];
            assert_eq!(keys(n), expected, "{n}");
            assert_eq!(n["app"], "bank");
            assert_eq!(n["state"], "pending");
        }
    }
    let first_item = &first["results"][0]["notification"];
    assert_eq!(first_item["idempotency_key"], "k1");
    assert_eq!(first_item["send_at"], "2099-01-01T00:00:00Z");
    assert_eq!(
        first["results"][1]["notification"]["idempotency_key"],
        Value::Null
    );
    // The repeat is the original, as stored.
    let repeat = &again["results"][0]["notification"];
    assert_eq!(repeat, first_item);
    assert_ne!(
        again["results"][1]["notification"]["id"],
        first["results"][1]["notification"]["id"]
    );
    // The support view has the same id, times and key.
    let id = first_item["id"].as_str().unwrap();
    let (_, view) = api
        .call(
            k,
            reqwest::Method::GET,
            &format!("/v1/notifications/{id}"),
            None,
            &[],
        )
        .await;
    for field in expected {
        assert_eq!(view[field], first_item[field], "{field}: {view}");
    }

    // A single enqueue: the whole support view.
    let (status, single) = post(
        "/v1/notifications",
        json!({"app": "bank", "user_id": "carol", "body": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{single}");
    for field in [
        "deliveries",
        "ttl_seconds",
        "expires_at",
        "priority",
        "user_id",
    ] {
        assert!(single.get(field).is_some(), "{field}: {single}");
    }
}

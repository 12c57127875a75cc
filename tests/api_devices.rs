//! The devices side of the HTTP API over real HTTP against a real
//! database: registering and updating tokens, a token moving between
//! users, removal, a user's devices with masked tokens, erasure, device
//! receipts, bad input naming the field, and scopes and apps.

mod common;

use common::api::{key, spawn, TestApi};
use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const FCM_TOKEN: &str = "fcm:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ-hQMRKRrZuJAEcl7B338qju59zJMjw2DELjzEvxwYv7hH5Ynpc1ODQ0aT4U4OFEeco8ohsN5PjL1iC2dNtk2BAokeMCg2ZXKqpc8FXKmhX94kIxQ";

async fn send(
    api: &TestApi,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    api.send(key, method, path, body.as_ref(), &[]).await
}

async fn call(
    api: &TestApi,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api.call(key, method, path, body.as_ref(), &[]).await
}

async fn put_device(api: &TestApi, key: &str, body: Value) -> (StatusCode, Value) {
    call(api, reqwest::Method::PUT, "/v1/devices", key, Some(body)).await
}

async fn user_devices(api: &TestApi, key: &str, user: &str) -> Vec<Value> {
    let (status, body) = call(
        api,
        reqwest::Method::GET,
        &format!("/v1/users/{user}/devices"),
        key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["devices"].as_array().expect("devices").clone()
}

/// A user's device as the API registers it, by platform.
fn device(user: &str, platform: &str, token: &str) -> Value {
    json!({"app": APP, "user_id": user, "platform": platform, "token": token})
}

/// Enqueues one inline notification to `user` and waits until the worker
/// has settled it; returns its id.
async fn notify_and_settle(pool: &PgPool, user: &str) -> uuid::Uuid {
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO pushrelay.notifications (app, user_id, body) VALUES ('bank', $1, 'hello') RETURNING id",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap();
    wait_for(
        pool,
        &format!(
            "SELECT count(*) FROM pushrelay.notifications n WHERE id = '{id}' AND state <> 'pending'
               AND NOT EXISTS (SELECT 1 FROM pushrelay.deliveries d WHERE d.notification_id = n.id
                                  AND d.state IN ('pending', 'sending'))"
        ),
        1,
    )
    .await;
    id
}

/// What was counted under `name` with these labels since the last
/// snapshot (a snapshot takes the counts). `#[sqlx::test]` runs on a
/// current-thread runtime, so the server's tasks see the recorder the test
/// installs on its thread. (tests/api_receipt_metrics.rs reads the same
/// counter from `/metrics`.)
fn counter(metrics: &Snapshotter, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

#[sqlx::test(migrations = false)]
async fn a_device_registers_once_and_updates_after(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["devices"], None).await;
    let token = ios_token("a1", 1);

    let mut first = device("alice", "ios", &token.to_uppercase());
    first["locale"] = json!("de-AT");
    first["timezone"] = json!("Europe/Vienna");
    first["app_version"] = json!("4.2.1");
    first["tags"] = json!(["vip", "beta", "vip"]);
    first["attributes"] = json!({"plan": "gold", "cards": 2});
    first["consent"] = json!({"marketing": false, "alerts": true});
    let (status, created) = put_device(&api, &k, first).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().expect("an id");
    assert_eq!(created["user_id"], "alice");
    assert_eq!(created["locale"], "de-AT");
    assert_eq!(created["timezone"], "Europe/Vienna");
    assert_eq!(created["app_version"], "4.2.1");
    assert_eq!(created["tags"], json!(["vip", "beta"]));
    assert_eq!(created["attributes"], json!({"plan": "gold", "cards": 2}));
    assert_eq!(
        created["consent"],
        json!({"alerts": true, "marketing": false})
    );
    assert!(created["last_seen_at"].is_string(), "{created}");
    assert!(!created.to_string().contains(&token), "{created}");

    // The same token again (lower case this time): the same device,
    // updated; what the app did not send stays as it was.
    let mut again = device("alice", "ios", &token);
    again["locale"] = json!("en-GB");
    again["app_version"] = json!("4.3.0");
    let (status, updated) = put_device(&api, &k, again).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["id"].as_i64(), Some(id));
    assert_eq!(updated["locale"], "en-GB");
    assert_eq!(updated["app_version"], "4.3.0");
    assert_eq!(updated["timezone"], "Europe/Vienna");
    assert_eq!(updated["tags"], json!(["vip", "beta"]));
    assert_eq!(updated["consent"]["marketing"], false);
    assert!(updated["last_seen_at"].as_str() >= created["last_seen_at"].as_str());

    // Sent fields replace what was there.
    let mut consent = device("alice", "ios", &token);
    consent["consent"] = json!({"marketing": true});
    consent["tags"] = json!([]);
    let (status, updated) = put_device(&api, &k, consent).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["consent"], json!({"marketing": true}));
    assert_eq!(updated["tags"], json!([]));
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.devices").await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn a_token_seen_for_another_user_moves_without_the_old_users_consent(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["devices"], None).await;

    let mut alice = device("alice", "android", FCM_TOKEN);
    alice["consent"] = json!({"marketing": true});
    alice["tags"] = json!(["vip"]);
    alice["timezone"] = json!("Europe/Vienna");
    let (_, registered) = put_device(&api, &k, alice).await;
    let id = registered["id"].as_i64().unwrap();
    // Removed (logged out), then the phone registers for bob.
    let (status, _) = send(
        &api,
        reqwest::Method::DELETE,
        &format!("/v1/devices/{id}"),
        &k,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, moved) = put_device(&api, &k, device("bob", "android", FCM_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["id"].as_i64(), Some(id));
    assert_eq!(moved["user_id"], "bob");
    assert_eq!(moved["invalidated_at"], Value::Null, "reactivated: {moved}");
    assert_eq!(moved["consent"], json!({}), "alice's consent is not bob's");
    assert_eq!(moved["tags"], json!([]));
    // The phone's own settings stay with it.
    assert_eq!(moved["timezone"], "Europe/Vienna");

    assert!(user_devices(&api, &k, "alice").await.is_empty());
    let bobs = user_devices(&api, &k, "bob").await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["id"].as_i64(), Some(id));
}

#[sqlx::test(migrations = false)]
async fn a_removed_device_gets_nothing_and_stays_listed(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["devices"], None).await;
    let (_, kept) = put_device(&api, &k, device("carol", "ios", &ios_token("a1", 1))).await;
    let (_, gone) = put_device(&api, &k, device("carol", "android", FCM_TOKEN)).await;
    let gone = gone["id"].as_i64().unwrap();

    let path = format!("/v1/devices/{gone}");
    let (status, body) = send(&api, reqwest::Method::DELETE, &path, &k, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(body.is_empty());
    // Removing it again is still done; a device that never was is not.
    let (status, _) = send(&api, reqwest::Method::DELETE, &path, &k, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, missing) = call(
        &api,
        reqwest::Method::DELETE,
        "/v1/devices/987654",
        &k,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert_eq!(missing["error"]["code"], "device_not_found");
    assert!(missing["error"]["message"]
        .as_str()
        .unwrap()
        .contains("987654"));

    let listed = user_devices(&api, &k, "carol").await;
    assert_eq!(listed.len(), 2);
    let removed = listed.iter().find(|d| d["id"] == gone).unwrap();
    assert_eq!(removed["invalidated_reason"], "removed through the API");
    assert!(removed["invalidated_at"].is_string());

    let daemon = start(&pool, settings());
    let n = notify_and_settle(&pool, "carol").await;
    stop(daemon).await;
    let to: Vec<i64> =
        sqlx::query_scalar("SELECT device_id FROM pushrelay.deliveries WHERE notification_id = $1")
            .bind(n)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(to, [kept["id"].as_i64().unwrap()]);
}

#[sqlx::test(migrations = false)]
async fn a_users_devices_are_listed_with_masked_tokens(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, two_apps()).await;
    let k = key(&pool, &["devices"], None).await;
    let reader = key(&pool, &["read"], None).await;
    let ios = ios_token("a1", 7);
    put_device(&api, &k, device("dora", "ios", &ios)).await;
    put_device(&api, &k, device("dora", "android", FCM_TOKEN)).await;
    let mut shop = device("dora", "ios", &ios_token("b2", 7));
    shop["app"] = json!(SHOP);
    put_device(&api, &k, shop).await;
    put_device(&api, &k, device("erik", "ios", &ios_token("c3", 7))).await;

    // A read key may look too.
    let (status, text) = send(
        &api,
        reqwest::Method::GET,
        "/v1/users/dora/devices",
        &reader,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    for token in [ios.clone(), FCM_TOKEN.to_owned(), ios_token("b2", 7)] {
        assert!(!text.contains(&token), "a whole token in {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    let devices = body["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    let masked: Vec<&str> = devices
        .iter()
        .map(|d| d["token"].as_str().unwrap())
        .collect();
    assert!(
        masked.contains(&pushrelay::model::mask_token(&ios).as_str()),
        "{masked:?}"
    );
    for field in [
        "consent",
        "tags",
        "attributes",
        "last_seen_at",
        "invalidated_at",
        "timezone",
    ] {
        assert!(
            devices[0].get(field).is_some(),
            "{field} missing: {}",
            devices[0]
        );
    }

    let (status, body) = call(
        &api,
        reqwest::Method::GET,
        "/v1/users/dora/devices?app=shop",
        &k,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["devices"].as_array().unwrap().len(), 1);
    let (status, body) = call(
        &api,
        reqwest::Method::GET,
        "/v1/users/dora/devices?app=nope",
        &k,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "app");
    assert!(user_devices(&api, &k, "nobody").await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn erasure_deletes_a_users_devices_and_history_and_only_theirs(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["devices"], None).await;
    let admin = key(&pool, &["admin"], None).await;
    let (_, phone) = put_device(&api, &k, device("frank", "ios", &ios_token("a1", 1))).await;
    put_device(&api, &k, device("frank", "android", FCM_TOKEN)).await;
    put_device(&api, &k, device("gina", "ios", &ios_token("a1", 2))).await;

    let daemon = start(&pool, settings());
    let franks = notify_and_settle(&pool, "frank").await;
    notify_and_settle(&pool, "gina").await;
    stop(daemon).await;
    let (status, body) = call(
        &api,
        reqwest::Method::POST,
        "/v1/receipts",
        &k,
        Some(json!({"notification_id": franks, "device_id": phone["id"], "event": "opened"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Erasure is an admin's.
    let (status, _) = call(&api, reqwest::Method::DELETE, "/v1/users/frank", &k, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, erased) = call(
        &api,
        reqwest::Method::DELETE,
        "/v1/users/frank",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(
        erased,
        json!({"devices": 2, "notifications": 1, "deliveries": 2, "attempts": 2, "receipts": 1})
    );
    let left = |sql: &'static str| count(&pool, sql);
    assert_eq!(
        left("SELECT count(*) FROM pushrelay.devices WHERE user_id = 'frank'").await,
        0
    );
    assert_eq!(
        left("SELECT count(*) FROM pushrelay.notifications WHERE user_id = 'frank'").await,
        0
    );
    assert_eq!(
        left(
            "SELECT count(*) FROM pushrelay.deliveries d WHERE NOT EXISTS
                (SELECT 1 FROM pushrelay.devices v WHERE v.id = d.device_id)"
        )
        .await,
        0
    );
    assert_eq!(
        left(
            "SELECT count(*) FROM pushrelay.attempts a WHERE NOT EXISTS
                (SELECT 1 FROM pushrelay.deliveries d WHERE d.id = a.delivery_id)"
        )
        .await,
        0
    );
    assert_eq!(
        left("SELECT count(*) FROM pushrelay.device_receipts").await,
        0
    );
    // Gina keeps everything.
    assert_eq!(
        left("SELECT count(*) FROM pushrelay.devices WHERE user_id = 'gina'").await,
        1
    );
    assert_eq!(left("SELECT count(*) FROM pushrelay.deliveries").await, 1);
    assert_eq!(left("SELECT count(*) FROM pushrelay.attempts").await, 1);

    let (status, again) = call(
        &api,
        reqwest::Method::DELETE,
        "/v1/users/frank",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again,
        json!({"devices": 0, "notifications": 0, "deliveries": 0, "attempts": 0, "receipts": 0})
    );
}

#[sqlx::test(migrations = false)]
async fn a_receipt_is_recorded_once_and_counted(_: PgPoolOptions, opts: PgConnectOptions) {
    let recorder = DebuggingRecorder::new();
    let metrics = recorder.snapshotter();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["devices"], None).await;
    let (_, phone) = put_device(&api, &k, device("hana", "ios", &ios_token("a1", 1))).await;
    let daemon = start(&pool, settings());
    let n = notify_and_settle(&pool, "hana").await;
    stop(daemon).await;

    let report = json!({
        "notification_id": n, "device_id": phone["id"], "event": "opened",
        "occurred_at": "2026-03-01T12:00:00+01:00"
    });
    let (status, first) = call(
        &api,
        reqwest::Method::POST,
        "/v1/receipts",
        &k,
        Some(report.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["event"], "opened");
    assert_eq!(first["occurred_at"], "2026-03-01T11:00:00Z");
    let opened = [("app", APP), ("event", "opened")];
    assert_eq!(
        counter(&metrics, "pushrelay_device_receipts_total", &opened),
        1
    );
    let (status, repeat) = call(
        &api,
        reqwest::Method::POST,
        "/v1/receipts",
        &k,
        Some(report),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{repeat}");
    assert_eq!(repeat["delivery_id"], first["delivery_id"]);
    // Another event of the same delivery is its own receipt.
    let (status, _) = call(
        &api,
        reqwest::Method::POST,
        "/v1/receipts",
        &k,
        Some(json!({"notification_id": n, "device_id": phone["id"], "event": "received"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event, count(*) FROM pushrelay.device_receipts WHERE notification_id = $1
          GROUP BY event ORDER BY event",
    )
    .bind(n)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, [("opened".into(), 1), ("received".into(), 1)]);
    // Support sees them in the notification's status.
    let reader = key(&pool, &["read"], None).await;
    let (status, view) = call(
        &api,
        reqwest::Method::GET,
        &format!("/v1/notifications/{n}"),
        &reader,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["received"].as_i64(), view["opened"].as_i64()),
        (Some(1), Some(1)),
        "{view}"
    );
    let events: Vec<&str> = view["deliveries"][0]["receipts"]
        .as_array()
        .expect("receipts")
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{view}");
    assert!(
        events.contains(&"opened") && events.contains(&"received"),
        "{view}"
    );
    // The provider's word on the delivery stays as it was.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered'"
        )
        .await,
        1
    );
    // A snapshot takes what was counted since the last one: the repeat
    // was not counted.
    assert_eq!(
        counter(&metrics, "pushrelay_device_receipts_total", &opened),
        0
    );

    let (status, missing) = call(
        &api,
        reqwest::Method::POST,
        "/v1/receipts",
        &k,
        Some(json!({"notification_id": uuid::Uuid::nil(), "device_id": phone["id"], "event": "opened"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert_eq!(missing["error"]["code"], "delivery_not_found");
    let (status, bad) = call(
        &api,
        reqwest::Method::POST,
        "/v1/receipts",
        &k,
        Some(json!({"notification_id": n, "device_id": phone["id"], "event": "clicked"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["error"]["field"], "event");
}

#[sqlx::test(migrations = false)]
async fn bad_registrations_name_the_field(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, two_apps()).await;
    let k = key(&pool, &["devices"], None).await;
    let token = ios_token("a1", 1);
    let with = |field: &str, value: Value| {
        let mut d = device("ivan", "ios", &token);
        d[field] = value;
        d
    };
    let garbage = "this is not an apns token, it has spaces";
    let cases = [
        (with("colour", json!("red")), "colour"),
        (device("ivan", "ios", garbage), "token"),
        (with("app", json!("nope")), "app"),
        (
            with("consent", json!({"marketing": "no"})),
            "consent.marketing",
        ),
        (with("platform", json!("windows")), "platform"),
        (with("timezone", json!("Europe/ Vienna")), "timezone"),
        (with("tags", json!(vec!["t"; 51])), "tags"),
        (with("tags", json!(["ok", "x".repeat(65)])), "tags[1]"),
        (
            with("attributes", json!({"notes": "x".repeat(5000)})),
            "attributes",
        ),
        (
            with("attributes", json!(["not", "an", "object"])),
            "attributes",
        ),
        (with("user_id", json!("")), "user_id"),
        (
            json!({"app": SHOP, "user_id": "ivan", "platform": "android", "token": FCM_TOKEN}),
            "platform",
        ),
    ];
    for (body, field) in cases {
        let (status, text) = send(
            &api,
            reqwest::Method::PUT,
            "/v1/devices",
            &k,
            Some(body.clone()),
        )
        .await;
        assert!(status.is_client_error(), "{body} → {status} {text}");
        let err: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(err["error"]["field"], field, "{body} → {text}");
        assert!(!text.contains(garbage), "{text}");
    }
    let (status, err) = put_device(&api, &k, device("ivan", "ios", garbage)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("hex digits") && message.contains("…"),
        "{message}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.devices").await,
        0
    );
}

#[sqlx::test(migrations = false)]
async fn scopes_and_apps_bound_what_a_key_may_do(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, two_apps()).await;
    let bank = key(&pool, &["devices"], Some(&[APP])).await;
    let shop = key(&pool, &["devices"], Some(&[SHOP])).await;
    let sender = key(&pool, &["send", "read"], None).await;
    let shop_admin = key(&pool, &["admin"], Some(&[SHOP])).await;
    let token = ios_token("a1", 1);

    let (status, err) = put_device(&api, &sender, device("jan", "ios", &token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("devices"));
    let (status, err) = put_device(&api, &shop, device("jan", "ios", &token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    let (status, unauthenticated) =
        put_device(&api, "not-a-key", device("jan", "ios", &token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{unauthenticated}");

    let (status, janbank) = put_device(&api, &bank, device("jan", "ios", &token)).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut in_shop = device("jan", "ios", &ios_token("b2", 1));
    in_shop["app"] = json!(SHOP);
    let (status, _) = put_device(&api, &shop, in_shop).await;
    assert_eq!(status, StatusCode::CREATED);

    // Another app's device is as good as missing to this key.
    let path = format!("/v1/devices/{}", janbank["id"]);
    let (status, _) = send(&api, reqwest::Method::DELETE, &path, &shop, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(user_devices(&api, &shop, "jan").await.len(), 1);
    assert_eq!(user_devices(&api, &bank, "jan").await.len(), 2 - 1);
    let (status, _) = call(
        &api,
        reqwest::Method::GET,
        "/v1/users/jan/devices?app=bank",
        &shop,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor can it report receipts of that app's deliveries.
    let daemon = start(&pool, two_apps());
    let n = notify_and_settle(&pool, "jan").await;
    stop(daemon).await;
    let report = json!({"notification_id": n, "device_id": janbank["id"], "event": "received"});
    let (status, _) = call(
        &api,
        reqwest::Method::POST,
        "/v1/receipts",
        &shop,
        Some(report.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &api,
        reqwest::Method::POST,
        "/v1/receipts",
        &sender,
        Some(report),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An admin of one app erases the user there only.
    let (status, erased) = call(
        &api,
        reqwest::Method::DELETE,
        "/v1/users/jan",
        &shop_admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["devices"], 1);
    assert_eq!(erased["notifications"], 0);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.devices WHERE user_id = 'jan'"
        )
        .await,
        1
    );
    let (status, _) = call(
        &api,
        reqwest::Method::DELETE,
        "/v1/users/jan?app=bank",
        &shop_admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = false)]
async fn erasing_a_user_while_a_send_is_in_flight_leaves_the_worker_running(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["devices"], None).await;
    let admin = key(&pool, &["admin"], None).await;
    // The simulator never answers "510e" tokens: the send hangs until the
    // send timeout, and its delivery stays `sending` meanwhile.
    put_device(&api, &k, device("kim", "ios", &ios_token("510e", 1))).await;
    put_device(&api, &k, device("lea", "ios", &ios_token("a1", 2))).await;
    let daemon = start(&pool, settings());
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, body) VALUES ('bank', 'kim', 'hi')",
    )
    .execute(&pool)
    .await
    .unwrap();
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'sending'",
        1,
    )
    .await;

    let (status, erased) = call(&api, reqwest::Method::DELETE, "/v1/users/kim", &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["deliveries"], 1);

    // The hung send times out and its result is written: its delivery's
    // row is gone, so the update matches nothing (the try's receipt is
    // the only trace) ...
    wait_for(&pool, "SELECT count(*) FROM pushrelay.attempts", 1).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.deliveries").await,
        0
    );
    // ... and the worker goes on sending.
    notify_and_settle(&pool, "lea").await;
    stop(daemon).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.deliveries").await,
        1
    );
    assert_eq!(count(&pool, DELIVERED).await, 1);
}

/// A new token for the same phone (`previous_token`): the device keeps its
/// row; when the new token is registered already, the old one's device is
/// invalidated instead; an unknown previous token changes nothing.
#[sqlx::test(migrations = false)]
async fn a_replaced_token_keeps_the_device(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let k = key(&pool, &["devices"], None).await;
    let (_, first) = put_device(&api, &k, device("u1", "android", "fcm-token-one-1")).await;
    let mut moved = device("u1", "android", "fcm-token-two-2");
    moved["previous_token"] = json!("fcm-token-one-1");
    let (status, second) = put_device(&api, &k, moved).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(
        second["id"], first["id"],
        "the same device, under its new token"
    );
    assert_eq!(user_devices(&api, &k, "u1").await.len(), 1);

    // Both tokens known: the old one's device is invalidated.
    let (_, third) = put_device(&api, &k, device("u1", "android", "fcm-token-three-3")).await;
    let mut again = device("u1", "android", "fcm-token-three-3");
    again["previous_token"] = json!("fcm-token-two-2");
    let (status, kept) = put_device(&api, &k, again).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["id"], third["id"]);
    let devices = user_devices(&api, &k, "u1").await;
    let old = devices.iter().find(|d| d["id"] == first["id"]).unwrap();
    assert_eq!(old["invalidated_reason"], "replaced by a newer token");

    // An unknown previous token: a plain registration.
    let mut unknown = device("u2", "android", "fcm-token-four-4");
    unknown["previous_token"] = json!("fcm-token-never-seen");
    let (status, body) = put_device(&api, &k, unknown).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A previous token that cannot be a token is named.
    let mut bad = device("u2", "ios", &ios_token("ab", 1));
    bad["previous_token"] = json!("not hex");
    let (status, body) = put_device(&api, &k, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "previous_token", "{body}");
}

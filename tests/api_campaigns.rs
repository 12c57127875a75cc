//! Campaigns over the HTTP API, against a real database: create, read with
//! progress until the campaign is delivered, list page by page, scopes and
//! apps, bad input answered with a 4xx naming the field, user lists
//! uploaded as CSV and intersected with a segment, and pause, resume,
//! cancel and edit as two marketers clicking at once would use them.

mod common;

use chrono::{Duration, Utc};
use common::api::{key, spawn, TestApi};
use common::*;
use pushrelay::config::Settings;
use pushrelay::store::campaigns;
use pushrelay::worker::campaigns::{context, limits};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn call(
    api: &TestApi,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api.call(key, method, path, body.as_ref(), &[]).await
}

/// A campaign to every device of `bank`, with `extra` fields on top.
fn campaign(name: &str, extra: Value) -> Value {
    let mut body = json!({
        "app": APP,
        "name": name,
        "title": "Autumn offer",
        "body": "0.5% more on savings until Friday",
        "category": "marketing",
        "segment": {"all": true},
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Users `u1`…`u{n}`, each with an iOS and an Android device, all of them
/// consenting to marketing.
async fn audience(pool: &PgPool, users: u32) {
    seed_users(pool, users).await;
    sqlx::query("UPDATE pushrelay.devices SET consent = '{\"marketing\": true}'")
        .execute(pool)
        .await
        .unwrap();
}

async fn pump(pool: &PgPool, settings: &Settings) -> campaigns::Pumped {
    campaigns::pump(pool, &context(settings), limits(settings), Utc::now())
        .await
        .unwrap()
}

/// POSTs a CSV body as a user list.
async fn upload(api: &TestApi, key: &str, query: &str, csv: &str) -> (StatusCode, Value) {
    let response = api
        .client
        .post(api.url(&format!("/v1/user-lists?{query}")))
        .bearer_auth(key)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn error(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["field"].as_str().unwrap_or_default(),
    )
}

#[sqlx::test(migrations = false)]
async fn a_campaign_is_created_read_and_followed_to_the_end(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    audience(&pool, 10).await;
    // One user said no to marketing on one device.
    sqlx::query(
        "UPDATE pushrelay.devices SET consent = '{}' WHERE user_id = 'u1' AND platform = 'ios'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let api = spawn(&pool, settings()).await;
    let admin = key(&pool, &["admin"], None).await;

    let response = api
        .client
        .post(api.url("/v1/campaigns"))
        .bearer_auth(&admin)
        .json(&campaign(
            "autumn savings",
            json!({"data": {"offer": "autumn"}}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/campaigns/{id}"));
    assert_eq!(created["state"], "scheduled");
    assert_eq!(created["priority"], "bulk", "bulk unless asked otherwise");
    assert_eq!(created["name"], "autumn savings");
    assert_eq!(created["data"], json!({"offer": "autumn"}));
    assert_eq!(created["reach"]["devices"], 19);
    assert_eq!(created["reach"]["users"], 10);
    assert_eq!(created["reach"]["no_consent"], 1, "{created}");
    assert_eq!(created["reach"]["by_platform"]["ios"]["devices"], 9);
    assert_eq!(created["reach"]["by_platform"]["android"]["devices"], 10);

    let (status, shown) = call(&api, &admin, Method::GET, &location, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["id"], id);
    assert_eq!(shown["progress"]["targeted"], 0, "not started yet: {shown}");
    assert_eq!(shown["progress"]["finished"], true);

    // The daemon starts it and sends it.
    let running = start(&pool, settings());
    wait_for(&pool, DELIVERED, 19).await;
    wait_for(
        &pool,
        &format!(
            "SELECT count(*) FROM pushrelay.campaigns WHERE id = '{id}' AND state = 'completed'"
        ),
        1,
    )
    .await;
    stop(running).await;

    // Support's view of each of its notifications names the campaign.
    let one: String = sqlx::query_scalar(&format!(
        "SELECT id::text FROM pushrelay.notifications WHERE campaign_id = '{id}' LIMIT 1"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    let (status, view) = call(
        &api,
        &admin,
        Method::GET,
        &format!("/v1/notifications/{one}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["campaign_id"], id);
    assert_eq!(view["campaign_name"], "autumn savings");

    let (_, shown) = call(&api, &admin, Method::GET, &location, None).await;
    assert_eq!(shown["state"], "completed");
    let progress = &shown["progress"];
    assert_eq!(progress["targeted"], 19, "{progress}");
    assert_eq!(progress["no_consent"], 1);
    assert_eq!(progress["delivered"], 19);
    assert_eq!(progress["sent"], 19);
    assert_eq!(progress["queued"], 0);
    assert_eq!(progress["by_platform"]["ios"]["delivered"], 9);
    assert_eq!(progress["by_platform"]["android"]["delivered"], 10);
    assert_eq!(progress["finished"], true);

    // A completed campaign stays completed: there is nothing to cancel.
    let (status, body) = call(
        &api,
        &admin,
        Method::POST,
        &format!("{location}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error(&body).0, "campaign_finished");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("completed"),
        "{body}"
    );
}

#[sqlx::test(migrations = false)]
async fn campaigns_are_listed_newest_first_page_by_page(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    audience(&pool, 2).await;
    let api = spawn(&pool, settings()).await;
    let admin = key(&pool, &["campaigns"], None).await;
    for i in 0..5 {
        let (status, body) = call(
            &api,
            &admin,
            Method::POST,
            "/v1/campaigns",
            Some(campaign(&format!("c{i}"), json!({}))),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut names = Vec::new();
    let mut path = "/v1/campaigns?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = call(&api, &admin, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        names.extend(items.iter().map(|c| c["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/campaigns?limit=2&app={APP}&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["c4", "c3", "c2", "c1", "c0"]);

    let (status, body) = call(
        &api,
        &admin,
        Method::GET,
        "/v1/campaigns?cursor=nonsense",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&body), ("invalid_cursor", "cursor"));
    let (status, body) = call(&api, &admin, Method::GET, "/v1/campaigns?limit=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error(&body).1, "limit");
}

#[sqlx::test(migrations = false)]
async fn the_campaigns_scope_and_the_keys_apps_decide_who_sees_what(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    audience(&pool, 2).await;
    sqlx::query("INSERT INTO pushrelay.devices (app, user_id, platform, token) VALUES ('shop', 's1', 'ios', md5('s') || md5('t'))")
        .execute(&pool)
        .await
        .unwrap();
    let api = spawn(&pool, two_apps()).await;
    let send = key(&pool, &["send", "read", "devices"], None).await;
    let marketing = key(&pool, &["campaigns"], None).await;
    let shop_only = key(&pool, &["campaigns"], Some(&[SHOP])).await;

    // Without the campaigns scope: 403 naming it, for every route.
    let (status, body) = call(
        &api,
        &send,
        Method::POST,
        "/v1/campaigns",
        Some(campaign("x", json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("campaigns scope"),
        "{body}"
    );
    let (status, _) = call(&api, &send, Method::GET, "/v1/campaigns", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = upload(&api, &send, "app=bank&name=x", "u1\n").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // With it: everything.
    let (status, bank) = call(
        &api,
        &marketing,
        Method::POST,
        "/v1/campaigns",
        Some(campaign("bank's", json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bank}");
    let bank_id = bank["id"].as_str().unwrap();
    let shop_campaign =
        json!({"app": SHOP, "name": "shop's", "body": "hi", "segment": {"all": true}});
    let (status, shop) = call(
        &api,
        &shop_only,
        Method::POST,
        "/v1/campaigns",
        Some(shop_campaign),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{shop}");
    let (status, list) = upload(&api, &marketing, "app=bank&name=vip", "u1\n").await;
    assert_eq!(status, StatusCode::CREATED, "{list}");

    // A key limited to shop: bank's campaign and list do not exist for it.
    for (method, path) in [
        (Method::GET, format!("/v1/campaigns/{bank_id}")),
        (Method::PATCH, format!("/v1/campaigns/{bank_id}")),
        (Method::POST, format!("/v1/campaigns/{bank_id}/pause")),
        (Method::POST, format!("/v1/campaigns/{bank_id}/resume")),
        (Method::POST, format!("/v1/campaigns/{bank_id}/cancel")),
        (
            Method::GET,
            format!("/v1/user-lists/{}", list["id"].as_str().unwrap()),
        ),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"name": "mine now"}));
        let (status, answer) = call(&api, &shop_only, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    let (_, page) = call(&api, &shop_only, Method::GET, "/v1/campaigns", None).await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop's"]);
    let (status, _) = call(
        &api,
        &shop_only,
        Method::POST,
        "/v1/campaigns",
        Some(campaign("not mine", json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &api,
        &shop_only,
        Method::GET,
        "/v1/campaigns?app=bank",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // And bank's campaign is untouched.
    let (_, shown) = call(
        &api,
        &marketing,
        Method::GET,
        &format!("/v1/campaigns/{bank_id}"),
        None,
    )
    .await;
    assert_eq!(
        (shown["name"].as_str(), shown["state"].as_str()),
        (Some("bank's"), Some("scheduled"))
    );
}

#[sqlx::test(migrations = false)]
async fn bad_campaigns_are_refused_naming_the_field(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    audience(&pool, 10).await;
    let api = spawn(&pool, settings()).await;
    let admin = key(&pool, &["admin"], None).await;
    let past = (Utc::now() - Duration::hours(2)).to_rfc3339();
    let cases = [
        (
            "empty segment",
            json!({"segment": {}}),
            422,
            "empty_audience",
            "segment",
        ),
        (
            "unknown filter",
            json!({"segment": {"platform": ["ios"]}}),
            422,
            "invalid_field",
            "segment.platform",
        ),
        (
            "empty filter",
            json!({"segment": {"tags_any": []}}),
            422,
            "invalid_segment",
            "segment.tags_any",
        ),
        (
            "past schedule",
            json!({"schedule": {"at": past}}),
            422,
            "schedule_in_past",
            "schedule",
        ),
        (
            "local time without a date",
            json!({"schedule": {"local_time": "09:00"}}),
            422,
            "invalid_schedule",
            "schedule.date",
        ),
        // 20 devices at 1 a minute take 20 minutes; each expires after 60 s.
        (
            "ttl under the throttle",
            json!({"throttle_per_minute": 1, "ttl_seconds": 60}),
            422,
            "ttl_too_short",
            "ttl_seconds",
        ),
        (
            "unknown app",
            json!({"app": "nope"}),
            422,
            "unknown_app",
            "app",
        ),
        (
            "unknown user list",
            json!({"user_list_id": uuid::Uuid::nil()}),
            422,
            "unknown_user_list",
            "user_list_id",
        ),
        (
            "unknown template",
            json!({"template": "nope"}),
            422,
            "unknown_template",
            "template",
        ),
        (
            "unknown field",
            json!({"throttle": 5}),
            422,
            "invalid_field",
            "throttle",
        ),
        (
            "empty category",
            json!({"category": ""}),
            422,
            "invalid_field",
            "category",
        ),
        (
            "no content",
            json!({"title": null, "body": null}),
            422,
            "invalid_field",
            "body",
        ),
        (
            "bad option",
            json!({"options": {"badge": -1}}),
            422,
            "invalid_field",
            "options.badge",
        ),
        (
            "empty name",
            json!({"name": " "}),
            422,
            "invalid_field",
            "name",
        ),
        (
            "zero throttle",
            json!({"throttle_per_minute": 0}),
            422,
            "invalid_field",
            "throttle_per_minute",
        ),
        (
            "nobody matches",
            json!({"segment": {"locales": ["tlh"]}}),
            422,
            "reaches_no_device",
            "segment",
        ),
        (
            "both lists",
            json!({"user_ids": ["u1"], "user_list_id": uuid::Uuid::nil()}),
            422,
            "invalid_field",
            "user_ids",
        ),
        (
            "a blank user id",
            json!({"user_ids": ["u1", ""]}),
            422,
            "invalid_field",
            "user_ids[1]",
        ),
    ];
    for (what, extra, status, code, field) in cases {
        let (got, body) = call(
            &api,
            &admin,
            Method::POST,
            "/v1/campaigns",
            Some(campaign("bad", extra)),
        )
        .await;
        assert_eq!(got.as_u16(), status, "{what}: {body}");
        assert_eq!(error(&body), (code, field), "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.len() > 20,
            "{what}: the message says what to do: {message}"
        );
    }
    // The TTL error says what would do.
    let (_, body) = call(
        &api,
        &admin,
        Method::POST,
        "/v1/campaigns",
        Some(campaign(
            "bad",
            json!({"throttle_per_minute": 1, "ttl_seconds": 60}),
        )),
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("at least 1200") && message.contains("at least 20 a minute"),
        "{message}"
    );
    let (status, body) = call(
        &api,
        &admin,
        Method::POST,
        "/v1/campaigns",
        Some(json!("not an object")),
    )
    .await;
    assert_eq!(status.as_u16(), 422, "{body}");
    let response = api
        .client
        .post(api.url("/v1/campaigns"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Nothing was created, and no inline list was left behind.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.campaigns").await,
        0
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.user_lists").await,
        0
    );
    let (status, body) = call(
        &api,
        &admin,
        Method::POST,
        "/v1/campaigns",
        Some(campaign(
            "bad",
            json!({"user_ids": ["u1"], "segment": {"locales": ["tlh"]}}),
        )),
    )
    .await;
    assert_eq!(error(&body).0, "reaches_no_device", "{status} {body}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.user_lists").await,
        0
    );

    // A preview is checked the same way.
    let previews = [
        (json!({"segment": {}}), "empty_audience", "segment"),
        (
            json!({"segment": {"platforms": ["ios"], "locale": ["de"]}}),
            "invalid_field",
            "segment.locale",
        ),
        (
            json!({"segment": {"all": true}, "user_list_id": uuid::Uuid::nil()}),
            "unknown_user_list",
            "user_list_id",
        ),
        (
            json!({"segment": {"all": true}, "schedule": {"at": past}}),
            "schedule_in_past",
            "schedule",
        ),
    ];
    for (mut preview, code, field) in previews {
        preview["app"] = json!(APP);
        let (status, body) = call(
            &api,
            &admin,
            Method::POST,
            "/v1/campaigns/preview",
            Some(preview),
        )
        .await;
        assert_eq!(
            (status.as_u16(), error(&body)),
            (422, (code, field)),
            "{body}"
        );
    }
}

/// Sends `body` as a chunked request (no Content-Length), the way a client
/// streaming a file it has not measured would; the status code.
async fn upload_chunked(api: &TestApi, key: &str, query: &str, body: &[u8]) -> u16 {
    let addr = api.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/user-lists?{query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(1000) {
        // The server may answer and close before the body is all sent.
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || s.write_all(chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[sqlx::test(migrations = false)]
async fn user_lists_are_uploaded_as_csv_and_intersect_the_segment(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    audience(&pool, 10).await;
    let mut s = settings();
    s.campaigns.max_upload_bytes = 10_000;
    let api = spawn(&pool, s).await;
    let admin = key(&pool, &["campaigns"], None).await;

    // A header, Windows line ends, duplicates, blank lines, spaces, and a
    // user with no device.
    let csv = "user_id\r\nu1\r\nu2\r\n\r\nu2\r\n u3 \r\n\r\nnobody\r\n";
    let (status, list) = upload(&api, &admin, "app=bank&name=vip%20savers", csv).await;
    assert_eq!(status, StatusCode::CREATED, "{list}");
    assert_eq!(list["users"], 4, "u1, u2, u3 and nobody: {list}");
    assert_eq!(list["name"], "vip savers");
    assert_eq!(list["app"], APP);
    let list_id = list["id"].as_str().unwrap();
    let (status, again) = call(
        &api,
        &admin,
        Method::GET,
        &format!("/v1/user-lists/{list_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["users"], 4);
    let members: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM pushrelay.user_list_members ORDER BY user_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(members, ["nobody", "u1", "u2", "u3"]);

    // The list alone: its users' devices; with a segment: both must hold.
    let preview = |body: Value| {
        let api = &api;
        let admin = &admin;
        async move {
            let (status, reach) = call(
                api,
                admin,
                Method::POST,
                "/v1/campaigns/preview",
                Some(body),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{reach}");
            reach
        }
    };
    let reach = preview(json!({"app": APP, "user_list_id": list_id})).await;
    assert_eq!(
        (reach["users"].as_i64(), reach["devices"].as_i64()),
        (Some(3), Some(6)),
        "{reach}"
    );
    let reach =
        preview(json!({"app": APP, "user_list_id": list_id, "segment": {"platforms": ["ios"]}}))
            .await;
    assert_eq!(
        (reach["users"].as_i64(), reach["devices"].as_i64()),
        (Some(3), Some(3)),
        "{reach}"
    );
    assert_eq!(reach["by_platform"]["ios"]["devices"], 3);
    assert!(reach["by_platform"]["android"].is_null(), "{reach}");
    // Inline ids work the same, and leave no list behind.
    let reach = preview(json!({"app": APP, "user_ids": ["u4", "u5", "u5", "ghost"], "segment": {"platforms": ["android"]}, "category": "marketing"})).await;
    assert_eq!(
        (reach["users"].as_i64(), reach["devices"].as_i64()),
        (Some(2), Some(2)),
        "{reach}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.user_lists").await,
        1
    );

    // A campaign with inline ids keeps them as a list named after it.
    let (status, created) = call(
        &api,
        &admin,
        Method::POST,
        "/v1/campaigns",
        Some(campaign(
            "vip ios",
            json!({"user_ids": ["u1", "u2"], "segment": {"platforms": ["ios"]}}),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["reach"]["devices"], 2);
    let inline = created["user_list_id"].as_str().unwrap();
    let (_, list) = call(
        &api,
        &admin,
        Method::GET,
        &format!("/v1/user-lists/{inline}"),
        None,
    )
    .await;
    assert_eq!(
        (list["name"].as_str(), list["users"].as_i64()),
        (Some("vip ios"), Some(2))
    );

    // Uploads that cannot be taken.
    let (status, body) = upload(&api, &admin, "app=bank&name=two", "u1,extra\n").await;
    assert_eq!(
        (status.as_u16(), error(&body).0),
        (400, "invalid_csv"),
        "{body}"
    );
    // A line too long to be anyone's id (and to index): random letters,
    // which PostgreSQL cannot compress under the index's limit.
    let mut seed: u64 = 7;
    let long: String = (0..6000)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (b'a' + (seed >> 59) as u8 % 26) as char
        })
        .collect();
    let (status, body) = upload(&api, &admin, "app=bank&name=long", &long).await;
    assert_eq!(
        (status.as_u16(), error(&body).0),
        (400, "invalid_csv"),
        "{body}"
    );
    let (status, body) = upload(&api, &admin, "app=nope&name=x", "u1\n").await;
    assert_eq!(
        (status.as_u16(), error(&body)),
        (422, ("unknown_app", "app")),
        "{body}"
    );
    let (status, body) = upload(&api, &admin, "app=bank", "u1\n").await;
    assert_eq!(
        (status.as_u16(), error(&body)),
        (400, ("invalid_query", "name")),
        "{body}"
    );
    let (status, body) = upload(&api, &admin, "app=bank&name=%20", "u1\n").await;
    assert_eq!(
        (status.as_u16(), error(&body)),
        (422, ("invalid_field", "name")),
        "{body}"
    );
    let response = api
        .client
        .post(api.url("/v1/user-lists?app=bank&name=x"))
        .bearer_auth(&admin)
        .json(&json!(["u1"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Over campaigns.max_upload_bytes: told at once from the length, or
    // while streaming one without a length.
    let big: String = (0..2000).map(|i| format!("user-{i}\n")).collect();
    let (status, body) = upload(&api, &admin, "app=bank&name=big", &big).await;
    assert_eq!(
        (status.as_u16(), error(&body).0),
        (413, "upload_too_large"),
        "{body}"
    );
    assert_eq!(
        upload_chunked(&api, &admin, "app=bank&name=big", big.as_bytes()).await,
        413
    );
    assert_eq!(
        upload_chunked(&api, &admin, "app=bank&name=small", b"u1\nu2\n").await,
        201
    );
    // Only the good uploads made lists.
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pushrelay.user_lists ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(names, ["small", "vip ios", "vip savers"]);
}

#[sqlx::test(migrations = false)]
async fn pause_resume_cancel_and_edit_are_safe_to_repeat(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    audience(&pool, 10).await;
    let settings = settings();
    let api = spawn(&pool, settings.clone()).await;
    let admin = key(&pool, &["campaigns"], None).await;
    // 60 a minute: a pump step queues one second's worth.
    let (status, created) = call(
        &api,
        &admin,
        Method::POST,
        "/v1/campaigns",
        Some(campaign("slow", json!({"throttle_per_minute": 60}))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("/v1/campaigns/{}", created["id"].as_str().unwrap());

    // Before it starts, content may change: the fields given, only.
    let (status, edited) = call(
        &api,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"title": "Last days", "data": {"offer": "x"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["title"], "Last days");
    assert_eq!(edited["body"], created["body"], "the body is kept");
    assert_eq!(edited["data"], json!({"offer": "x"}));
    let (status, body) = call(
        &api,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"subject": "x"})),
    )
    .await;
    assert_eq!(
        (status.as_u16(), error(&body).1),
        (422, "subject"),
        "{body}"
    );

    for _ in 0..2 {
        let (status, c) = call(&api, &admin, Method::POST, &format!("{path}/pause"), None).await;
        assert_eq!(
            (status, c["state"].as_str()),
            (StatusCode::OK, Some("paused")),
            "{c}"
        );
    }
    assert_eq!(
        pump(&pool, &settings).await.started,
        0,
        "a paused campaign does not start"
    );
    for _ in 0..2 {
        let (status, c) = call(&api, &admin, Method::POST, &format!("{path}/resume"), None).await;
        assert_eq!(
            (status, c["state"].as_str()),
            (StatusCode::OK, Some("scheduled")),
            "{c}"
        );
    }
    let pumped = pump(&pool, &settings).await;
    assert_eq!(pumped.started, 1);
    assert!(pumped.queued >= 1 && pumped.queued < 20, "{pumped:?}");

    // Once sending has started, content is refused; the rest may change.
    let (status, body) = call(
        &api,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"body": "changed"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error(&body).0, "campaign_started");
    let (status, c) = call(
        &api,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"name": "slow, renamed", "throttle_per_minute": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(
        (c["name"].as_str(), c["throttle_per_minute"].as_i64()),
        (Some("slow, renamed"), None)
    );
    assert_eq!(c["body"], created["body"]);
    let (_, shown) = call(&api, &admin, Method::GET, &path, None).await;
    assert_eq!(shown["state"], "running");
    assert_eq!(shown["progress"]["targeted"], 20, "{shown}");

    // Two marketers cancel at once: both are told it is cancelled.
    let cancel = format!("{path}/cancel");
    let ((a, first), (b, second)) = tokio::join!(
        call(&api, &admin, Method::POST, &cancel, None),
        call(&api, &admin, Method::POST, &cancel, None)
    );
    assert_eq!((a, b), (StatusCode::OK, StatusCode::OK), "{first} {second}");
    assert_eq!(
        (first["state"].as_str(), second["state"].as_str()),
        (Some("cancelled"), Some("cancelled"))
    );
    let id = created["id"].as_str().unwrap();
    let pending = count(
        &pool,
        &format!(
            "SELECT (SELECT count(*) FROM pushrelay.campaign_targets WHERE campaign_id = '{id}' AND state = 'pending')
                  + (SELECT count(*) FROM pushrelay.notifications WHERE campaign_id = '{id}' AND state = 'pending')
                  + (SELECT count(*) FROM pushrelay.deliveries WHERE campaign_id = '{id}' AND state IN ('pending', 'sending'))"
        ),
    )
    .await;
    assert_eq!(
        pending, 0,
        "nothing of a cancelled campaign is left to send"
    );
    assert_eq!(pump(&pool, &settings).await.queued, 0);
    let (status, again) = call(&api, &admin, Method::POST, &cancel, None).await;
    assert_eq!(
        (status, again["state"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (_, shown) = call(&api, &admin, Method::GET, &path, None).await;
    assert_eq!(shown["progress"]["finished"], true, "{shown}");
    assert_eq!(shown["progress"]["queued"], 0, "{shown}");

    // A cancelled campaign cannot come back, nor be edited.
    for (method, route, body) in [
        (Method::POST, format!("{path}/pause"), None),
        (Method::POST, format!("{path}/resume"), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "again"}))),
    ] {
        let (status, answer) = call(&api, &admin, method, &route, body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{route}: {answer}");
        assert_eq!(error(&answer).0, "campaign_finished");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cancelled"),
            "{answer}"
        );
    }
    // An id that is no campaign: 404; one that is no id: 400.
    let (status, body) = call(
        &api,
        &admin,
        Method::POST,
        &format!("/v1/campaigns/{}/pause", uuid::Uuid::nil()),
        None,
    )
    .await;
    assert_eq!(
        (status.as_u16(), error(&body).0),
        (404, "campaign_not_found")
    );
    let (status, _) = call(&api, &admin, Method::GET, "/v1/campaigns/42", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

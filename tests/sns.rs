//! Amazon SNS as a provider, against a real local SNS (moto's server):
//! endpoints made once at registration, checked and repaired, replaced
//! tokens, removed and erased devices' endpoints deleted, the exact
//! messages SNS received, and what each of SNS's answers leads to.

mod common;

use common::api::{self, TestApi};
use common::moto::{self, Moto};
use common::{count, ios_token, pool, wait_for, APP};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The test's platform applications: iOS production, iOS sandbox, Android.
struct Apps {
    ios: String,
    sandbox: String,
    android: String,
}

async fn apps(moto: &Moto) -> Apps {
    Apps {
        ios: moto.application("APNS").await,
        sandbox: moto.application("APNS_SANDBOX").await,
        android: moto.application("GCM").await,
    }
}

fn settings(moto: &Moto, a: &Apps) -> pushrelay::config::Settings {
    let mut s = common::settings();
    moto::route(&mut s, APP, moto, &a.ios, &a.sandbox, &a.android);
    // The reaper runs every quarter lease.
    s.worker.lease_secs = 2;
    s
}

/// A token of the test's own: moto, unlike SNS, finds an endpoint by its
/// token across platform applications, and the tests share one moto.
fn token() -> String {
    format!("fcm-{}", uuid::Uuid::new_v4().simple())
}

fn apns_token() -> String {
    ios_token(&uuid::Uuid::new_v4().simple().to_string()[..16], 1)
}

/// Registers a device through the API; returns the answer.
async fn register(api: &TestApi, key: &str, body: Value) -> (reqwest::StatusCode, Value) {
    api.call(key, Method::PUT, "/v1/devices", Some(&body), &[])
        .await
}

async fn device(
    api: &TestApi,
    key: &str,
    user: &str,
    platform: &str,
    token: &str,
    env: &str,
) -> Value {
    let (status, d) = register(
        api,
        key,
        json!({"app": APP, "user_id": user, "platform": platform, "token": token, "environment": env}),
    )
    .await;
    assert!(status.is_success(), "{status}: {d}");
    d
}

async fn notify(pool: &PgPool, user: &str) {
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, title, body, data, collapse_key)
         VALUES ('bank', $1, 'Transfer', 'You received 10 EUR', '{\"kind\": \"transfer\"}', 'transfer-1')",
    )
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
}

/// Runs a daemon until one notification to u1 leaves `until` (a count
/// query) at `want`, then stops it.
async fn send_to_u1(pool: &PgPool, s: pushrelay::config::Settings, until: &str, want: i64) {
    let running = common::start(pool, s);
    notify(pool, "u1").await;
    wait_for(pool, until, want).await;
    common::stop(running).await;
}

const TOKEN_DEAD: &str = "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'token_dead'";
const FAILED: &str = "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'failed'";

/// A device of u1 inserted by SQL, as an operator's import does, with an
/// endpoint ARN (and whether it is to be checked) if given.
async fn insert_device(pool: &PgPool, token: &str, arn: Option<(&str, bool)>) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO pushrelay.devices
             (app, user_id, platform, token, sns_endpoint_arn, sns_endpoint_stale)
         VALUES ('bank', 'u1', 'android', $1, $2, COALESCE($3, true)) RETURNING id",
    )
    .bind(token)
    .bind(arn.map(|a| a.0))
    .bind(arn.map(|a| a.1))
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn stored_arn(pool: &PgPool, device_id: i64) -> Option<String> {
    sqlx::query_scalar("SELECT sns_endpoint_arn FROM pushrelay.devices WHERE id = $1")
        .bind(device_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The attempts of a device's deliveries: (provider, outcome, reason,
/// provider message id).
async fn attempts(
    pool: &PgPool,
    device_id: i64,
) -> Vec<(String, String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT a.provider, a.outcome, a.reason, a.provider_message_id
           FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id
          WHERE d.device_id = $1 ORDER BY a.started_at",
    )
    .bind(device_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Waits (bounded, not a timing assertion) until `check` holds.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn id(d: &Value) -> i64 {
    d["id"].as_i64().unwrap()
}

fn arn(d: &Value) -> String {
    d["sns_endpoint_arn"]
        .as_str()
        .expect("an endpoint ARN in the answer")
        .to_owned()
}

/// The platform payload inside a message SNS received.
fn payload(message: &str, key: &str) -> Value {
    let outer: Value = serde_json::from_str(message).unwrap();
    let mut keys: Vec<&str> = outer
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want = ["default", key];
    want.sort_unstable();
    assert_eq!(keys, want, "{message}");
    assert_eq!(outer["default"], "You received 10 EUR");
    serde_json::from_str(outer[key].as_str().expect("the payload is a JSON string")).unwrap()
}

#[sqlx::test(migrations = false)]
async fn registration_makes_one_endpoint_and_sends_reach_sns_exactly(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let moto = moto::moto();
    let a = apps(moto).await;
    let s = settings(moto, &a);
    let api = api::spawn(&pool, s.clone()).await;
    let key = api::key(&pool, &["devices"], None).await;

    let iphone_token = apns_token();
    let iphone = device(&api, &key, "u1", "ios", &iphone_token, "production").await;
    let again = device(&api, &key, "u1", "ios", &iphone_token, "production").await;
    assert_eq!(id(&iphone), id(&again));
    assert_eq!(
        arn(&iphone),
        arn(&again),
        "registering again keeps the endpoint"
    );
    assert!(arn(&iphone).contains(":endpoint/APNS/"), "{iphone}");
    let ios_endpoints = moto.endpoints(&a.ios).await;
    assert_eq!(
        ios_endpoints.len(),
        1,
        "one endpoint per token: {ios_endpoints:?}"
    );
    assert_eq!(ios_endpoints[0].0, arn(&iphone));
    assert_eq!(ios_endpoints[0].1["Token"], iphone_token);
    assert_eq!(ios_endpoints[0].1["Enabled"], "true");
    assert_eq!(
        ios_endpoints[0].1["CustomUserData"],
        format!("pushrelay device {}", id(&iphone))
    );
    let dev_build = device(&api, &key, "u1", "ios", &apns_token(), "sandbox").await;
    assert!(
        arn(&dev_build).contains(":endpoint/APNS_SANDBOX/"),
        "{dev_build}"
    );
    let android = device(&api, &key, "u1", "android", &token(), "production").await;
    assert!(arn(&android).contains(":endpoint/GCM/"), "{android}");
    assert_eq!(stored_arn(&pool, id(&android)).await, Some(arn(&android)));

    send_to_u1(&pool, s, common::DELIVERED, 3).await;

    // Each receipt names SNS's message id of what SNS received.
    let mut received = Vec::new();
    for d in [&iphone, &dev_build, &android] {
        let messages = moto.messages(&arn(d)).await;
        assert_eq!(messages.len(), 1, "one publish per device: {messages:?}");
        let tries = attempts(&pool, id(d)).await;
        assert_eq!(tries.len(), 1);
        let (provider, outcome, _, message_id) = &tries[0];
        assert_eq!((provider.as_str(), outcome.as_str()), ("sns", "delivered"));
        assert_eq!(message_id.as_deref(), Some(messages[0].0.as_str()));
        received.push(messages[0].1.clone());
    }
    // The same aps dictionary as the APNs client sends, under the key of
    // the device's environment.
    let aps = json!({
        "kind": "transfer",
        "aps": {"alert": {"title": "Transfer", "body": "You received 10 EUR"}, "sound": "default"}
    });
    assert_eq!(payload(&received[0], "APNS"), aps);
    assert_eq!(payload(&received[1], "APNS_SANDBOX"), aps);
    // The FCM v1 message the FCM client sends, without the token (SNS puts
    // the endpoint's in).
    let mut fcm = payload(&received[2], "GCM");
    let ttl = fcm["fcmV1Message"]["message"]["android"]
        .as_object_mut()
        .unwrap()
        .remove("ttl")
        .expect("a ttl");
    let secs: i64 = ttl.as_str().unwrap().trim_end_matches('s').parse().unwrap();
    assert!((86_000..=86_400).contains(&secs), "the default day: {ttl}");
    assert_eq!(
        fcm,
        json!({"fcmV1Message": {"message": {
            "notification": {"title": "Transfer", "body": "You received 10 EUR"},
            "data": {"kind": "transfer"},
            "android": {
                "priority": "high",
                "collapse_key": "transfer-1",
                "notification": {"tag": "transfer-1", "default_sound": true}
            }
        }}})
    );
}

/// A device with an endpoint, and its token.
async fn one_device(pool: &PgPool) -> (&'static Moto, Apps, TestApi, String, Value, String) {
    let moto = moto::moto();
    let a = apps(moto).await;
    let api = api::spawn(pool, settings(moto, &a)).await;
    let key = api::key(pool, &["devices", "admin"], None).await;
    let t = token();
    let d = device(&api, &key, "u1", "android", &t, "production").await;
    (moto, a, api, key, d, t)
}

async fn invalidated(pool: &PgPool, device_id: i64) -> Option<String> {
    sqlx::query_scalar("SELECT invalidated_reason FROM pushrelay.devices WHERE id = $1")
        .bind(device_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_disabled_endpoint_kills_the_token_and_is_deleted(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let (moto, a, _api, _key, d, _) = one_device(&pool).await;
    // SNS disables an endpoint when APNs or FCM reports its token invalid.
    moto.set_enabled(&arn(&d), false).await;
    let running = common::start(&pool, settings(moto, &a));
    notify(&pool, "u1").await;
    wait_for(&pool, TOKEN_DEAD, 1).await;
    let tries = attempts(&pool, id(&d)).await;
    assert_eq!(tries.len(), 1, "a dead token is not retried: {tries:?}");
    assert_eq!(tries[0].1, "token_dead");
    assert!(
        tries[0].2.as_deref().unwrap().contains("EndpointDisabled"),
        "{tries:?}"
    );
    assert!(invalidated(&pool, id(&d))
        .await
        .unwrap()
        .contains("EndpointDisabled"));
    // The reaper deletes the endpoint and forgets it.
    eventually("the endpoint to be deleted", || async {
        moto.attributes(&arn(&d)).await.is_none()
    })
    .await;
    eventually("the device to forget it", || async {
        stored_arn(&pool, id(&d)).await.is_none()
    })
    .await;
    assert!(
        moto.messages(&arn(&d)).await.is_empty(),
        "nothing was published"
    );
    common::stop(running).await;
}

#[sqlx::test(migrations = false)]
async fn registering_again_re_enables_a_disabled_endpoint(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let (moto, _a, api, key, d, t) = one_device(&pool).await;
    moto.set_enabled(&arn(&d), false).await;
    // CreatePlatformEndpoint alone would hand back the disabled endpoint.
    let again = device(&api, &key, "u1", "android", &t, "production").await;
    assert_eq!(arn(&again), arn(&d));
    assert_eq!(moto.attributes(&arn(&d)).await.unwrap()["Enabled"], "true");
}

#[sqlx::test(migrations = false)]
async fn a_token_change_updates_the_same_endpoint(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let (moto, a, api, key, d, t) = one_device(&pool).await;
    let new_token = token();
    let (status, moved) = register(
        &api,
        &key,
        json!({"app": APP, "user_id": "u1", "platform": "android", "token": new_token,
               "previous_token": t}),
    )
    .await;
    assert_eq!(status, 200, "the device is the same one: {moved}");
    assert_eq!(id(&moved), id(&d));
    assert_eq!(
        arn(&moved),
        arn(&d),
        "the endpoint is updated, not replaced"
    );
    let endpoints = moto.endpoints(&a.android).await;
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert_eq!(endpoints[0].1["Token"], new_token.as_str());

    send_to_u1(&pool, settings(moto, &a), common::DELIVERED, 1).await;
    assert_eq!(moto.messages(&arn(&d)).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn an_endpoint_made_elsewhere_is_taken_over(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let moto = moto::moto();
    let a = apps(moto).await;
    let t = token();
    // The processor pushrelay replaces made the endpoint with its own data.
    let legacy = moto
        .foreign_endpoint(&a.android, &t, Some("legacy-processor customer 42"))
        .await;
    let api = api::spawn(&pool, settings(moto, &a)).await;
    let key = api::key(&pool, &["devices"], None).await;
    let d = device(&api, &key, "u1", "android", &t, "production").await;
    assert_eq!(
        arn(&d),
        legacy,
        "the existing endpoint, recovered from SNS's answer"
    );
    let attrs = moto.attributes(&legacy).await.unwrap();
    assert_eq!(
        attrs["CustomUserData"],
        format!("pushrelay device {}", id(&d))
    );
    assert_eq!(moto.endpoints(&a.android).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn removed_and_erased_devices_lose_their_endpoints(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let (moto, a, api, key, d, _) = one_device(&pool).await;
    let other = device(&api, &key, "u2", "ios", &apns_token(), "production").await;
    let running = common::start(&pool, settings(moto, &a));

    let (status, _) = api
        .call(
            &key,
            Method::DELETE,
            &format!("/v1/devices/{}", id(&d)),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 204);
    eventually("the removed device's endpoint to be deleted", || async {
        moto.attributes(&arn(&d)).await.is_none()
    })
    .await;
    let (status, _) = api
        .call(&key, Method::DELETE, "/v1/users/u2", None, &[])
        .await;
    assert_eq!(status, 200);
    eventually("the erased device's endpoint to be deleted", || async {
        moto.attributes(&arn(&other)).await.is_none()
    })
    .await;
    eventually("the deletion queue to empty", || async {
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.sns_endpoint_deletions",
        )
        .await
            == 0
    })
    .await;
    common::stop(running).await;
}

#[sqlx::test(migrations = false)]
async fn a_device_inserted_by_sql_gets_its_endpoint_at_its_first_send(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let moto = moto::moto();
    let a = apps(moto).await;
    let device_id = insert_device(&pool, &token(), None).await;
    let running = common::start(&pool, settings(moto, &a));
    notify(&pool, "u1").await;
    wait_for(&pool, common::DELIVERED, 1).await;
    notify(&pool, "u1").await;
    wait_for(&pool, common::DELIVERED, 2).await;
    common::stop(running).await;
    let endpoints = moto.endpoints(&a.android).await;
    assert_eq!(endpoints.len(), 1, "made once: {endpoints:?}");
    assert_eq!(
        stored_arn(&pool, device_id).await.as_deref(),
        Some(endpoints[0].0.as_str())
    );
    let stale: bool =
        sqlx::query_scalar("SELECT sns_endpoint_stale FROM pushrelay.devices WHERE id = $1")
            .bind(device_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!stale, "checked, so the next send publishes straight away");
    assert_eq!(moto.messages(&endpoints[0].0).await.len(), 2);
}

#[sqlx::test(migrations = false)]
async fn an_endpoint_deleted_behind_our_back_is_made_again(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let (moto, a, _api, _key, d, _) = one_device(&pool).await;
    moto.client()
        .delete_endpoint()
        .endpoint_arn(arn(&d))
        .send()
        .await
        .unwrap();
    send_to_u1(&pool, settings(moto, &a), common::DELIVERED, 1).await;
    let now = stored_arn(&pool, id(&d)).await.unwrap();
    assert_ne!(now, arn(&d), "a new endpoint");
    assert_eq!(moto.messages(&now).await.len(), 1);
    assert_eq!(
        attempts(&pool, id(&d)).await.len(),
        1,
        "one attempt: the repair is part of the send"
    );
}

#[sqlx::test(migrations = false)]
async fn an_imported_endpoint_is_checked_and_used(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let moto = moto::moto();
    let a = apps(moto).await;
    let t = token();
    // The previous processor's endpoint for the token, disabled meanwhile
    // (the app was reinstalled, say), imported by SQL.
    let imported = moto.foreign_endpoint(&a.android, &t, None).await;
    moto.set_enabled(&imported, false).await;
    let device_id = insert_device(&pool, &t, Some((&imported, true))).await;
    send_to_u1(&pool, settings(moto, &a), common::DELIVERED, 1).await;
    assert_eq!(moto.attributes(&imported).await.unwrap()["Enabled"], "true");
    assert_eq!(moto.messages(&imported).await.len(), 1);
    assert_eq!(
        moto.endpoints(&a.android).await.len(),
        1,
        "no second endpoint"
    );
    assert_eq!(
        stored_arn(&pool, device_id).await.as_deref(),
        Some(imported.as_str())
    );
}

#[sqlx::test(migrations = false)]
async fn a_malformed_publish_is_permanent(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let moto = moto::moto();
    let a = apps(moto).await;
    // An endpoint ARN imported from another processor, mangled on the way.
    // Marked checked, so the send publishes to it straight away.
    let mangled = Some(("arn:aws:sns:eu-west-1:mangled", false));
    let device_id = insert_device(&pool, &token(), mangled).await;
    send_to_u1(&pool, settings(moto, &a), FAILED, 1).await;
    let tries = attempts(&pool, device_id).await;
    assert_eq!(tries.len(), 1, "not retried: {tries:?}");
    assert_eq!(tries[0].1, "permanent");
    assert!(
        tries[0]
            .2
            .as_deref()
            .unwrap()
            .starts_with("InvalidParameter"),
        "{tries:?}"
    );
    assert_eq!(
        invalidated(&pool, device_id).await,
        None,
        "the token is not to blame"
    );
}

#[sqlx::test(migrations = false)]
async fn rejected_credentials_pause_the_app(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    // This SNS checks credentials after the set-up's one request: ours
    // ("testing", unknown to it) are refused.
    let moto = moto::moto_checking_credentials(1);
    let android = moto.application("GCM").await;
    let mut s = common::settings();
    let none = "arn:aws:sns:eu-west-1:123456789012:app/APNS/unused";
    let none_sandbox = "arn:aws:sns:eu-west-1:123456789012:app/APNS_SANDBOX/unused";
    moto::route(&mut s, APP, &moto, none, none_sandbox, &android);
    common::add_device(&pool, "u1", pushrelay::model::Platform::Android, &token()).await;
    let running = common::start(&pool, s);
    notify(&pool, "u1").await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.provider_holds WHERE app = 'bank' AND kind = 'config_error'",
        1,
    )
    .await;
    common::stop(running).await;
    let reason: String = sqlx::query_scalar("SELECT reason FROM pushrelay.provider_holds")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(reason.contains("InvalidClientTokenId"), "{reason}");
    assert!(
        !reason.contains("testing"),
        "no credential in the reason: {reason}"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'pending'"
        )
        .await,
        1,
        "the delivery waits for the pause to end"
    );
}

#[sqlx::test(migrations = false)]
async fn a_device_moving_to_production_moves_to_its_application(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let moto = moto::moto();
    let a = apps(moto).await;
    let api = api::spawn(&pool, settings(moto, &a)).await;
    let key = api::key(&pool, &["devices"], None).await;
    let t = apns_token();
    // A development build, then the App Store build on the same phone.
    let dev = device(&api, &key, "u1", "ios", &t, "sandbox").await;
    let prod = device(&api, &key, "u1", "ios", &t, "production").await;
    assert_eq!(id(&dev), id(&prod));
    assert!(arn(&prod).contains(":endpoint/APNS/"), "{prod}");
    assert_eq!(moto.endpoints(&a.ios).await.len(), 1);
    assert!(
        moto.attributes(&arn(&dev)).await.is_none(),
        "the sandbox endpoint is deleted"
    );
}

/// `pushrelay devices add`, as an operator runs it, makes the endpoint and
/// moves it to a replacing token.
#[sqlx::test(migrations = false)]
async fn the_cli_registers_devices_with_their_endpoints(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let moto = moto::moto();
    let a = apps(moto).await;
    let config = std::env::temp_dir().join(format!("pushrelay-sns-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"postgres://{}@{}:{}/{}\"\n\
             [apps.bank.android]\nprovider = \"sns\"\nplatform_application_arn = \"{}\"\nendpoint_url = \"{}\"\n",
            opts.get_username(),
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap(),
            a.android,
            moto.url
        ),
    )
    .unwrap();
    let add = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushrelay"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("DATABASE_URL")
            .arg("--config")
            .arg(&config)
            .args([
                "devices",
                "add",
                "--app",
                "bank",
                "--user",
                "u1",
                "--platform",
                "android",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let (first, second) = (token(), token());
    let id = add(&["--token", &first]);
    let endpoints = moto.endpoints(&a.android).await;
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert_eq!(
        stored_arn(&pool, id).await.as_deref(),
        Some(endpoints[0].0.as_str())
    );
    assert_eq!(add(&["--token", &second, "--previous-token", &first]), id);
    let endpoints = moto.endpoints(&a.android).await;
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert_eq!(endpoints[0].1["Token"], second);
    std::fs::remove_file(config).unwrap();
}

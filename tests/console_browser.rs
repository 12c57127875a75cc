//! The support console in a real browser (headless Chromium through
//! chromedriver), against real deliveries: the daemon sends through the
//! mock APNs and FCM, one device accepts and the other's token is dead.
//! Support signs in, finds the customer, opens the notification and reads
//! the verdict and the attempts; signs out; a key for another app sees
//! nothing. Every page is screenshot under `target/console-screenshots/`.

mod common;

use common::api::{key, spawn, TestApi};
use common::browser::Browser;
use common::mock::{rule, settings_for};
use common::*;
use fantoccini::key::Key;
use pushrelay::mock::{Fault, MockConfig, MockProviders};
use pushrelay::model::mask_token;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const USER: &str = "cust-4711";
/// Another customer whose iPhone's token ends like this one's, so a search
/// for that ending lists both.
const OTHER: &str = "cust-0815";
const DEAD_ANDROID: &str = "dead-fcm-registration-token-of-cust-4711";

fn iphone() -> String {
    ios_token("a1", 0xc0ffee)
}

/// Registers a device through the API; returns its id.
async fn register(api: &TestApi, key: &str, user: &str, platform: &str, token: &str) -> i64 {
    let (status, body) = api
        .call(
            key,
            Method::PUT,
            "/v1/devices",
            Some(&json!({
                "app": APP, "user_id": user, "platform": platform, "token": token,
                "locale": "de-CH", "timezone": "Europe/Zurich", "app_version": "4.2.1",
                "consent": {"marketing": false},
            })),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// A customer with an iPhone and an Android phone whose token is dead, one
/// notification sent to both and settled, opened on the iPhone; returns
/// the notification's id.
async fn one_delivered_one_dead(api: &TestApi) -> String {
    let k = key(&api.pool, &["devices", "send"], None).await;
    let iphone_id = register(api, &k, USER, "ios", &iphone()).await;
    register(api, &k, USER, "android", DEAD_ANDROID).await;
    register(api, &k, OTHER, "ios", &ios_token("b2", 0xc0ffee)).await;
    let (status, created) = api
        .call(
            &k,
            Method::POST,
            "/v1/notifications",
            Some(&json!({
                "app": APP, "user_id": USER, "title": "Transfer received",
                "body": "EUR 12.50 from ACME", "idempotency_key": "transfer-981",
            })),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    wait_for(&api.pool, OPEN, 0).await;
    wait_for(&api.pool, DELIVERED, 1).await;
    let id = created["id"].as_str().unwrap().to_owned();
    // The app on the iPhone reports that the customer opened it.
    let (status, receipt) = api
        .call(
            &k,
            Method::POST,
            "/v1/receipts",
            Some(&json!({"notification_id": id, "device_id": iphone_id, "event": "opened"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    id
}

#[sqlx::test(migrations = false)]
async fn support_finds_the_customer_and_reads_why(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let mut config = MockConfig::default();
    config.faults.rules = vec![rule("dead", Fault::Unregistered, None)];
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "console-browser");
    let api = spawn(&pool, s.clone()).await;
    let daemon = start(&pool, s);
    let id = one_delivered_one_dead(&api).await;
    let read = key(&pool, &["read"], None).await;
    let url = |path: &str| api.url(path);

    let b = Browser::start().await;

    // Not signed in: the console sends support to sign in.
    b.goto(&url("/console/")).await;
    assert!(
        b.path().await.starts_with("/console/sign-in?next="),
        "{}",
        b.path().await
    );
    assert_eq!(b.text("h1").await, "Sign in");
    assert_eq!(b.unlabelled_fields().await, Vec::<String>::new());
    b.screenshot("sign-in").await;

    // A wrong key is refused, saying why.
    b.fill("#key", "prk_not-a-real-key").await;
    b.click("#sign-in").await;
    let problem = b.text("#problem").await;
    assert!(
        problem.starts_with("That API key is not valid"),
        "{problem}"
    );
    b.screenshot("sign-in-refused").await;

    // The read key signs in, from the keyboard alone: the key field has
    // the focus, Enter submits. and lands on the overview.
    b.fill("#key", &read).await;
    assert_eq!(b.focused_id().await, "key");
    b.press_enter().await;
    assert_eq!(b.path().await, "/console/overview");
    assert_eq!(b.text("h1").await, "Overview");
    // The first Tab reaches the link that skips the navigation.
    b.press(Key::Tab).await;
    assert_eq!(b.focused_text().await, "Skip to content");
    b.press(Key::Enter).await;
    assert_eq!(b.focused_id().await, "main");
    let overview = b.text("main").await;
    assert!(overview.contains("No provider is paused"), "{overview}");
    // The last hour's top failure reason is the dead token.
    assert!(overview.contains("UNREGISTERED"), "{overview}");
    b.screenshot("overview").await;

    // The tokens' common ending lists both customers' iPhones.
    b.fill("#q", "c0ffee").await;
    b.click("form.search button").await;
    assert!(b.path().await.starts_with("/console/search?q=c0ffee"));
    let results = b.text("main").await;
    assert!(
        results.contains(USER) && results.contains(OTHER),
        "{results}"
    );
    assert!(!results.contains(&iphone()), "a whole token is shown");
    b.screenshot("search").await;

    // The user id finds the one customer: straight to their page.
    b.fill("#q", USER).await;
    b.click("form.search button").await;
    assert_eq!(b.path().await, format!("/console/users/{USER}"));
    assert_eq!(b.text("h1").await, format!("User {USER}"));
    let devices = b.texts("#devices tbody tr").await;
    assert_eq!(devices.len(), 2, "{devices:?}");
    let iphone_row = devices.iter().find(|r| r.starts_with("iOS")).unwrap();
    assert!(iphone_row.contains(&mask_token(&iphone())), "{iphone_row}");
    assert!(iphone_row.contains("active"), "{iphone_row}");
    let android_row = devices.iter().find(|r| r.starts_with("Android")).unwrap();
    assert!(
        android_row.contains(&mask_token(DEAD_ANDROID)),
        "{android_row}"
    );
    assert!(android_row.contains("invalidated"), "{android_row}");
    let page = b.text("main").await;
    assert!(!page.contains(&iphone()) && !page.contains(DEAD_ANDROID));
    let notifications = b.texts("#notifications tbody tr").await;
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    assert!(notifications[0].contains("Transfer received"));
    assert!(notifications[0].contains(&id));
    assert_eq!(b.unlabelled_fields().await, Vec::<String>::new());
    b.screenshot("user").await;

    // The notification: the verdict in words and every attempt.
    b.click("#notifications tbody a").await;
    assert_eq!(b.path().await, format!("/console/notifications/{id}"));
    let verdict = b.text("#verdict").await;
    assert!(
        verdict.starts_with("Delivered to the iOS device at "),
        "{verdict}"
    );
    assert!(
        verdict.contains(
            "; the Android device's token was dead (FCM UNREGISTERED) and has been removed; "
        ),
        "{verdict}"
    );
    assert!(
        verdict.contains("opened on the iOS device at "),
        "{verdict}"
    );
    let receipts = b.texts("#receipts tbody tr").await;
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert!(
        receipts[0].starts_with("iOS") && receipts[0].contains("opened"),
        "{receipts:?}"
    );
    let timeline = b.texts("#timeline li").await;
    assert!(timeline[0].contains("Created"), "{timeline:?}");
    assert!(
        timeline[1].contains("Fanned out to 2 devices"),
        "{timeline:?}"
    );
    assert!(
        timeline
            .iter()
            .any(|e| e.contains("Android") && e.contains("Device invalidated")),
        "{timeline:?}"
    );
    let attempts = b.texts("#attempts tbody tr").await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let ios = attempts.iter().find(|r| r.starts_with("iOS")).unwrap();
    assert!(ios.contains("APNs HTTP 200"), "{ios}");
    assert!(ios.contains("Delivered"), "{ios}");
    let android = attempts.iter().find(|r| r.starts_with("Android")).unwrap();
    assert!(android.contains("FCM HTTP 404 UNREGISTERED"), "{android}");
    assert!(android.contains("Token dead"), "{android}");
    b.screenshot("notification").await;
    b.mobile().await;
    b.goto(&url(&format!("/console/notifications/{id}"))).await;
    assert_eq!(b.text("#verdict").await, verdict);
    assert_eq!(
        b.overflow_x().await,
        0,
        "the page scrolls sideways at 375 px"
    );
    b.screenshot("notification-375").await;
    b.desktop().await;

    // Signing out ends it: the page now sends back to sign-in.
    b.click("#sign-out").await;
    assert_eq!(b.path().await, "/console/sign-in");
    b.goto(&url(&format!("/console/notifications/{id}"))).await;
    assert!(b.path().await.starts_with("/console/sign-in?next="));
    assert_eq!(b.text("h1").await, "Sign in");

    // A key for another app signs in but finds neither the notification
    // nor the customer.
    let shop = key(&pool, &["read"], Some(&["shop"])).await;
    b.fill("#key", &shop).await;
    b.click("#sign-in").await;
    assert_eq!(b.path().await, format!("/console/notifications/{id}"));
    assert_eq!(b.text("h1").await, "Not found");
    let problem = b.text("#problem").await;
    assert!(
        problem.contains("in the apps this key can see"),
        "{problem}"
    );
    assert!(!b.text("main").await.contains("Transfer received"));
    b.screenshot("not-found-other-app").await;
    // (The not-found page has no nav: search from the overview.)
    b.goto(&url("/console/overview")).await;
    b.fill("#q", USER).await;
    b.click("form.search button").await;
    assert!(b.path().await.starts_with("/console/search?q="));
    let page = b.text("main").await;
    assert!(page.contains("Nothing found for"), "{page}");
    assert!(!page.contains(&mask_token(&iphone())), "{page}");
    assert!(!page.contains("Transfer received"), "{page}");

    b.close().await;
    stop(daemon).await;
}

//! The content model through the whole pipeline (outbox → fan-out →
//! dispatch → the real clients → the strict mock over HTTP/2 + TLS): push
//! types and topics, every content option where Apple's and Google's
//! documentation put it, silent pushes, now-or-never messages, what the
//! database refuses at insert, FCM's size limit, and the derived collapse
//! id that makes a retried duplicate show once.

mod common;

use common::mock::*;
use common::*;
use pushrelay::config::{ProviderSettings, Settings};
use pushrelay::content::PushType;
use pushrelay::mock::{Fault, MockConfig, MockProviders, Received, Route};
use pushrelay::mock_setup::write_credentials;
use pushrelay::model::Platform;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

const TOPIC: &str = "com.example.pushrelay";

/// iOS on APNs (or on FCM with `ios_via_fcm`), Android on FCM, all at `mock`.
fn settings_for(mock: &MockProviders, name: &str, ios_via_fcm: bool) -> Settings {
    let routes = write_credentials(mock, &temp_dir(name)).unwrap();
    let mut s = settings();
    let app = s.apps.get_mut(APP).unwrap();
    app.ios = Some(if ios_via_fcm {
        ProviderSettings::Fcm(routes.fcm.clone())
    } else {
        ProviderSettings::Apns(routes.apns.clone())
    });
    app.android = Some(ProviderSettings::Fcm(routes.fcm));
    s
}

/// Inserts one inline notification for `user` as a producer would.
async fn notify(pool: &PgPool, user: &str, body: Option<&str>, options: Value, ttl: i32) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO pushrelay.notifications (app, user_id, title, body, data, options, ttl_seconds)
         VALUES ('bank', $1, CASE WHEN $2::text IS NULL THEN NULL ELSE 'Title' END, $2, '{\"k\": \"v\"}', $3, $4)
         RETURNING id",
    )
    .bind(user)
    .bind(body)
    .bind(options)
    .bind(ttl)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn by_route(received: &[Received], route: Route) -> Vec<&Received> {
    received.iter().filter(|r| r.route == route).collect()
}

#[sqlx::test(migrations = false)]
async fn each_push_type_reaches_apns_with_its_topic_suffix_priority_and_payload(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let mut tokens = Vec::new();
    for (i, t) in PushType::ALL.iter().enumerate() {
        let token = ios_token("ab", i as u32);
        add_device(&pool, &format!("u{i}"), Platform::Ios, &token).await;
        notify(
            &pool,
            &format!("u{i}"),
            Some("hi"),
            json!({"push_type": t}),
            600,
        )
        .await;
        tokens.push((token, *t));
    }
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let daemon = start(&pool, settings_for(&mock, "push-types", false));
    wait_for(&pool, OPEN, 0).await;
    let received = mock.received();
    for (token, t) in &tokens {
        let r = received
            .iter()
            .find(|r| &r.token == token)
            .unwrap_or_else(|| panic!("{t} was not accepted; mock got {received:?}"));
        assert_eq!(r.headers["apns-push-type"], t.as_str());
        let suffix = match t {
            PushType::Voip => ".voip",
            PushType::Complication => ".complication",
            PushType::Fileprovider => ".pushkit.fileprovider",
            PushType::Liveactivity => ".push-type.liveactivity",
            PushType::Location => ".location-query",
            PushType::Pushtotalk => ".voip-ptt",
            _ => "",
        };
        assert_eq!(r.headers["apns-topic"], format!("{TOPIC}{suffix}"), "{t}");
        if *t == PushType::Background {
            assert_eq!(r.headers["apns-priority"], "5");
            assert_eq!(r.body["aps"], json!({"content-available": 1}));
        } else {
            assert_eq!(r.headers["apns-priority"], "10", "{t}");
            assert_eq!(r.body["aps"]["alert"]["body"], "hi", "{t}");
        }
    }
    assert_eq!(count(&pool, DELIVERED).await, PushType::ALL.len() as i64);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_topic_of_another_app_is_answered_device_token_not_for_topic(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_device(&pool, "u0", Platform::Ios, &ios_token("ab", 0)).await;
    notify(&pool, "u0", Some("hi"), json!({}), 600).await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let mut s = settings_for(&mock, "other-topic", false);
    if let Some(ProviderSettings::Apns(a)) = &mut s.apps.get_mut(APP).unwrap().ios {
        a.topic = "com.other.app".into();
    }
    let daemon = start(&pool, s);
    wait_for(&pool, OPEN, 0).await;
    let last_error: String = sqlx::query_scalar("SELECT last_error FROM pushrelay.deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        last_error.contains("DeviceTokenNotForTopic"),
        "{last_error}"
    );
    assert!(mock.received().is_empty());
    stop(daemon).await;
}

/// Every option, set once.
fn all_options() -> Value {
    json!({
        "subtitle": "Sub", "badge": 0,
        "sound": {"critical": 1, "name": "alarm.caf", "volume": 0.7},
        "thread_id": "payments", "category": "PAYMENT", "mutable_content": true,
        "content_available": true, "interruption_level": "time-sensitive",
        "relevance_score": 0.8, "target_content_id": "acct-1",
        "image": "https://cdn.example.com/i.png", "channel_id": "payments",
        "icon": "ic_bank", "color": "#1a2b3c", "notification_count": 2,
        "analytics_label": "transfer_in"
    })
}

/// The `aps` Apple's payload key reference gives for [`all_options`].
fn expected_aps() -> Value {
    json!({
        "alert": {"title": "Title", "subtitle": "Sub", "body": "hi"},
        "badge": 0,
        "sound": {"critical": 1, "name": "alarm.caf", "volume": 0.7},
        "thread-id": "payments", "category": "PAYMENT", "mutable-content": 1,
        "content-available": 1, "interruption-level": "time-sensitive",
        "relevance-score": 0.8, "target-content-id": "acct-1"
    })
}

#[sqlx::test(migrations = false)]
async fn every_content_field_arrives_where_apple_and_google_put_it(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let ios = ios_token("ab", 1);
    add_device(&pool, "alice", Platform::Ios, &ios).await;
    add_device(&pool, "alice", Platform::Android, "alice-android-token").await;
    let id = notify(&pool, "alice", Some("hi"), all_options(), 600).await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let daemon = start(&pool, settings_for(&mock, "fields", false));
    wait_for(&pool, OPEN, 0).await;
    let received = mock.received();

    // iOS, APNs direct.
    let a = by_route(&received, Route::Apns);
    assert_eq!(a.len(), 1, "{received:?}");
    let a = a[0];
    assert_eq!(a.headers["apns-push-type"], "alert");
    assert_eq!(a.headers["apns-collapse-id"], id.to_string());
    assert_eq!(
        a.body,
        json!({"aps": expected_aps(), "k": "v", "image": "https://cdn.example.com/i.png"})
    );

    // Android through FCM.
    let f = by_route(&received, Route::Fcm);
    assert_eq!(f.len(), 1, "{received:?}");
    let m = &f[0].body["message"];
    assert_eq!(
        m["notification"],
        json!({"title": "Title", "body": "hi", "image": "https://cdn.example.com/i.png"})
    );
    assert_eq!(m["data"], json!({"k": "v"}));
    assert_eq!(m["fcm_options"], json!({"analytics_label": "transfer_in"}));
    assert_eq!(
        m["android"]["notification"],
        json!({"tag": "payments", "click_action": "PAYMENT", "channel_id": "payments",
               "icon": "ic_bank", "color": "#1a2b3c", "notification_count": 2,
               "sound": "alarm.caf"})
    );
    assert_eq!(m["android"]["priority"], "high");
    assert!(m["android"].get("collapse_key").is_none(), "{m}");
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn ios_through_fcm_gets_the_same_aps_and_apns_headers(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_device(&pool, "alice", Platform::Ios, &ios_token("cd", 1)).await;
    let id = notify(&pool, "alice", Some("hi"), all_options(), 600).await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let daemon = start(&pool, settings_for(&mock, "ios-fcm", true));
    wait_for(&pool, OPEN, 0).await;
    let received = mock.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let m = &received[0].body["message"];
    assert_eq!(m["apns"]["payload"], json!({"aps": expected_aps()}));
    let h = &m["apns"]["headers"];
    assert_eq!(h["apns-push-type"], "alert");
    assert_eq!(h["apns-priority"], "10");
    assert_eq!(h["apns-collapse-id"], id.to_string());
    assert_eq!(
        m["apns"]["fcm_options"],
        json!({"image": "https://cdn.example.com/i.png"})
    );
    assert_eq!(m["notification"]["title"], "Title");
    assert_eq!(m["fcm_options"]["analytics_label"], "transfer_in");
    assert!(m.get("android").is_none());
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_data_only_message_has_no_notification_block(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    add_device(&pool, "alice", Platform::Ios, &ios_token("ab", 1)).await;
    add_device(&pool, "alice", Platform::Android, "alice-android-token").await;
    add_device(&pool, "bob", Platform::Ios, &ios_token("cd", 2)).await;
    // No body: a silent push needs none.
    let id = notify(&pool, "alice", None, json!({"data_only": true}), 600).await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let daemon = start(&pool, settings_for(&mock, "silent", false));
    wait_for(&pool, OPEN, 0).await;
    let received = mock.received();
    assert_eq!(received.len(), 2, "{received:?}");

    let a = by_route(&received, Route::Apns)[0];
    assert_eq!(a.headers["apns-push-type"], "background");
    assert_eq!(a.headers["apns-priority"], "5");
    assert_eq!(
        a.body,
        json!({"aps": {"content-available": 1}, "k": "v", "pushrelay_id": id.to_string()})
    );
    let m = &by_route(&received, Route::Fcm)[0].body["message"];
    assert!(m.get("notification").is_none(), "{m}");
    assert!(m["android"].get("notification").is_none(), "{m}");
    assert_eq!(m["data"], json!({"k": "v", "pushrelay_id": id.to_string()}));
    stop(daemon).await;

    // iOS through FCM: a background push with content-available only.
    let id = notify(&pool, "bob", None, json!({"data_only": true}), 600).await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let daemon = start(&pool, settings_for(&mock, "silent-fcm", true));
    wait_for(&pool, OPEN, 0).await;
    let received = mock.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let m = &received[0].body["message"];
    assert!(m.get("notification").is_none(), "{m}");
    assert_eq!(
        m["apns"]["payload"],
        json!({"aps": {"content-available": 1}})
    );
    assert_eq!(m["apns"]["headers"]["apns-push-type"], "background");
    assert_eq!(m["apns"]["headers"]["apns-priority"], "5");
    assert_eq!(m["data"]["pushrelay_id"], id.to_string());
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn ttl_zero_is_sent_once_with_zero_expiry_and_never_retried(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let good_ios = ios_token("ab", 1);
    let bad_ios = ios_token("5e", 1);
    add_device(&pool, "alice", Platform::Ios, &good_ios).await;
    add_device(&pool, "alice", Platform::Ios, &bad_ios).await;
    add_device(&pool, "alice", Platform::Android, "good-android-token").await;
    add_device(&pool, "alice", Platform::Android, "fail-android-token").await;
    let mut config = MockConfig::default();
    config.faults.rules = vec![
        rule("5e", Fault::Unavailable, Some(1)),
        rule("fail", Fault::Unavailable, Some(1)),
    ];
    let mock = MockProviders::start(config).await.unwrap();
    // Queued a while before the daemon starts: "now or never" is counted
    // from the send, not from the insert.
    let id = notify(&pool, "alice", Some("code 1234"), json!({}), 0).await;
    let daemon = start(&pool, settings_for(&mock, "ttl0", false));
    wait_for(&pool, OPEN, 0).await;

    let received = mock.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let a = by_route(&received, Route::Apns)[0];
    assert_eq!(a.headers["apns-expiration"], "0");
    let f = by_route(&received, Route::Fcm)[0];
    assert_eq!(f.body["message"]["android"]["ttl"], "0s");
    // The two that met a 503 were tried once and ended expired, saying why.
    let failed: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT d.state, d.last_error, (SELECT count(*) FROM pushrelay.attempts a WHERE a.delivery_id = d.id)
           FROM pushrelay.deliveries d JOIN pushrelay.devices v ON v.id = d.device_id
          WHERE v.token IN ($1, 'fail-android-token')",
    )
    .bind(&bad_ios)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(failed.len(), 2);
    for (state, last_error, attempts) in failed {
        assert_eq!((state.as_str(), attempts), ("expired", 1), "{last_error}");
        assert!(last_error.contains("ttl_seconds = 0"), "{last_error}");
    }
    assert_eq!(mock.stats().requests, 4);
    // Support sees "now or never", not an expiry equal to the send time.
    let status = pushrelay::store::status::load(&pool, id).await.unwrap();
    let table = pushrelay::cli::render_table(&status);
    assert!(table.contains("expires now or never"), "{table}");
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn reserved_data_keys_and_bad_options_are_refused_at_insert(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let insert = |data: Value, options: Value| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO pushrelay.notifications (app, user_id, body, data, options)
                 VALUES ('bank', 'u', 'b', $1, $2)",
            )
            .bind(data)
            .bind(options)
            .execute(&pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        }
    };
    for key in [
        "from",
        "message_type",
        "notification",
        "google.c.a.e",
        "gcm.n.e",
        "GOOGLE_x",
    ] {
        let err = insert(
            Value::Object([(key.to_string(), json!("1"))].into_iter().collect()),
            json!({}),
        )
        .await
        .unwrap_err();
        assert!(
            err.contains(&format!("'{key}'")) && err.contains("reserved"),
            "{key}: {err}"
        );
    }
    for (options, key) in [
        (json!({"badges": 1}), "badges"),
        (json!({"badge": -1}), "badge"),
        (json!({"badge": "one"}), "badge"),
        (json!({"color": "red"}), "color"),
        (json!({"push_type": "fax"}), "push_type"),
        (
            json!({"sound": {"critical": 1, "name": "a", "volume": 2}}),
            "sound",
        ),
        (json!({"interruption_level": "loud"}), "interruption_level"),
        (json!({"image": "http://x/i.png"}), "image"),
    ] {
        let err = insert(json!({}), options.clone()).await.unwrap_err();
        assert!(err.contains(&format!("'{key}'")), "{options}: {err}");
    }
    insert(json!({"amount": "1"}), all_options()).await.unwrap();
    // The library's insert reports the database's refusal with the key.
    let err = pushrelay::store::notifications::enqueue(
        &pool,
        &pushrelay::store::notifications::NewNotification {
            app: APP.into(),
            user_id: Some("u".into()),
            body: Some("b".into()),
            data: json!({"google.x": "1"}),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("google.x"), "{err}");
}

#[sqlx::test(migrations = false)]
async fn an_oversized_fcm_message_is_refused_before_sending(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_device(&pool, "alice", Platform::Android, "alice-android-token").await;
    // Each part fits its own limit; together (as Google counts them: keys
    // and values of data plus the notification's texts) they do not.
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, body, data)
         VALUES ('bank', 'alice', repeat('x', 3000), jsonb_build_object('blob', repeat('y', 2000)))",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let daemon = start(&pool, settings_for(&mock, "size", false));
    wait_for(&pool, OPEN, 0).await;
    let (state, last_error): (String, String) =
        sqlx::query_as("SELECT state, last_error FROM pushrelay.deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "failed", "{last_error}");
    assert!(
        last_error.contains("5008") && last_error.contains("4096"),
        "{last_error}"
    );
    assert_eq!(mock.stats().requests, 0);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_retry_after_an_ambiguous_failure_carries_the_same_collapse_id_and_tag(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let ios = ios_token("a5", 1);
    add_device(&pool, "alice", Platform::Ios, &ios).await;
    add_device(&pool, "alice", Platform::Android, "amb-android-token").await;
    let mut config = MockConfig::default();
    // The provider takes the message, then the connection drops before
    // the answer: the device has it, and pushrelay must try again.
    config.faults.rules = vec![
        rule("a5", Fault::AcceptThenReset, Some(1)),
        rule("amb", Fault::AcceptThenReset, Some(1)),
    ];
    let mock = MockProviders::start(config).await.unwrap();
    let id = notify(&pool, "alice", Some("hi"), json!({}), 600).await;
    let daemon = start(&pool, settings_for(&mock, "dupes", false));
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(count(&pool, DELIVERED).await, 2);
    let received = mock.received();
    let apns = by_route(&received, Route::Apns);
    assert_eq!(apns.len(), 2, "the device received the message twice");
    for r in &apns {
        assert_eq!(r.headers["apns-collapse-id"], id.to_string());
    }
    assert_ne!(apns[0].headers["apns-id"], "", "each send has its apns-id");
    let fcm = by_route(&received, Route::Fcm);
    assert_eq!(fcm.len(), 2, "the device received the message twice");
    for r in &fcm {
        let android = &r.body["message"]["android"];
        assert_eq!(android["notification"]["tag"], id.to_string());
        // Not a collapse key: FCM keeps only four per device.
        assert!(android.get("collapse_key").is_none(), "{android}");
    }
    stop(daemon).await;
}

//! The real APNs and FCM clients against the mock servers over real HTTP/2
//! (TLS), through the whole pipeline: outbox → fan-out → dispatch → mock.

mod common;

use std::time::Duration;

use common::mock::*;
use common::*;
use pushrelay::config::ProviderSettings;
use pushrelay::mock::{Fault, Faults, MockConfig, MockProviders, Route};
use pushrelay::model::Platform;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// (state, attempts, outcomes of its attempts in order) of a device's delivery.
async fn delivery_of(pool: &PgPool, device: i64) -> (String, i32, Vec<String>) {
    let (state, attempts): (String, i32) =
        sqlx::query_as("SELECT state, attempts FROM pushrelay.deliveries WHERE device_id = $1")
            .bind(device)
            .fetch_one(pool)
            .await
            .unwrap();
    let outcomes = sqlx::query_scalar(
        "SELECT a.outcome FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id
          WHERE d.device_id = $1 ORDER BY a.attempt",
    )
    .bind(device)
    .fetch_all(pool)
    .await
    .unwrap();
    (state, attempts, outcomes)
}

#[sqlx::test(migrations = false)]
async fn every_apns_reason_maps_to_its_outcome(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    // (status, reason, final state, attempts) — transient ones fail once.
    // App-wide reasons (BadTopic, TopicDisallowed, …) pause the app
    // environment instead: tests/guard.rs.
    let cases: &[(u16, &str, &str, i32)] = &[
        (410, "Unregistered", "token_dead", 1),
        (410, "ExpiredToken", "token_dead", 1),
        (400, "BadDeviceToken", "token_dead", 1),
        (400, "DeviceTokenNotForTopic", "token_dead", 1),
        (400, "BadCollapseId", "failed", 1),
        (400, "BadExpirationDate", "failed", 1),
        (400, "BadMessageId", "failed", 1),
        (400, "BadPriority", "failed", 1),
        (400, "DuplicateHeaders", "failed", 1),
        (400, "MissingDeviceToken", "failed", 1),
        (400, "PayloadEmpty", "failed", 1),
        (413, "PayloadTooLarge", "failed", 1),
        (429, "TooManyRequests", "delivered", 2),
        (500, "InternalServerError", "delivered", 2),
        (503, "ServiceUnavailable", "delivered", 2),
        (503, "Shutdown", "delivered", 2),
        (400, "IdleTimeout", "delivered", 2),
        // Re-signed and repeated inside the same attempt.
        (403, "ExpiredProviderToken", "delivered", 1),
    ];
    let mut config = MockConfig {
        // The scripted ExpiredProviderToken makes the client re-sign at once.
        token_update_window_secs: 0,
        ..MockConfig::default()
    };
    let mut devices = Vec::new();
    for (i, (status, reason, ..)) in cases.iter().enumerate() {
        let prefix = format!("{:04x}", i + 1);
        let times = if *status == 410 || reason.starts_with("Bad") || *status == 413 {
            None
        } else {
            Some(1)
        };
        config.faults.rules.push(rule(
            &prefix,
            Fault::Apns {
                status: *status,
                reason: reason.to_string(),
            },
            times,
        ));
        devices.push(
            add_device(
                &pool,
                &format!("u{i}"),
                Platform::Ios,
                &ios_token(&prefix, 1),
            )
            .await,
        );
    }
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "apns-reasons");
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..cases.len())).await;
    wait_for(&pool, OPEN, 0).await;

    for ((status, reason, state, attempts), device) in cases.iter().zip(&devices) {
        let (got_state, got_attempts, outcomes) = delivery_of(&pool, *device).await;
        assert_eq!(
            (got_state.as_str(), got_attempts),
            (*state, *attempts),
            "{status} {reason}: {outcomes:?}"
        );
        let first = &outcomes[0];
        let expected_first = match *state {
            "token_dead" => "token_dead",
            "failed" => "permanent",
            _ if *reason == "ExpiredProviderToken" => "delivered",
            _ => "transient",
        };
        assert_eq!(first, expected_first, "{status} {reason}");
    }
    // ExpiredProviderToken made the client sign a second token.
    assert_eq!(daemon.providers.apns_signatures(), 2);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn apns_credential_errors_pause_the_app_without_burning_attempts(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let reasons = [
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
        "InvalidProviderToken",
        "MissingProviderToken",
    ];
    let mut config = MockConfig::default();
    for (i, reason) in reasons.iter().enumerate() {
        let prefix = format!("c{:03x}", i);
        config.faults.rules.push(rule(
            &prefix,
            Fault::Apns {
                status: 403,
                reason: reason.to_string(),
            },
            None,
        ));
        add_device(
            &pool,
            &format!("u{i}"),
            Platform::Ios,
            &ios_token(&prefix, 1),
        )
        .await;
    }
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "apns-config");
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..reasons.len())).await;
    wait_for(
        &pool,
        "SELECT count(DISTINCT delivery_id) FROM pushrelay.attempts WHERE outcome = 'config_error'",
        5,
    )
    .await;
    wait_for(&pool, "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'pending' AND attempts = 0 AND lease_owner IS NULL", 5).await;
    let seen = mock.stats().requests;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        mock.stats().requests,
        seen,
        "sends to a misconfigured app must pause"
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_wrong_signing_key_is_a_config_error_that_pauses_the_app(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_ios_users(&pool, "ab", 5).await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let (mut s, routes) = settings_for(&mock, "wrong-key");
    let wrong = routes.dir.join("wrong.p8");
    std::fs::write(&wrong, mock.other_apns_key().p8_pem).unwrap();
    let mut apns = routes.apns.clone();
    apns.key_file = Some(wrong);
    s.apps.get_mut(APP).unwrap().ios = Some(ProviderSettings::Apns(apns));
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..5)).await;
    wait_for(&pool, "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'pending' AND attempts = 0 AND lease_owner IS NULL AND next_attempt_at > now() + interval '10 seconds'", 5).await;
    let reasons: Vec<String> = sqlx::query_scalar("SELECT DISTINCT reason FROM pushrelay.attempts")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(reasons, vec!["InvalidProviderToken".to_string()]);
    let seen = mock.stats().requests;
    assert!(seen <= 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.stats().requests, seen);
    assert_eq!(mock.stats().accepted, 0);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn every_fcm_error_maps_to_its_outcome(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let fcm = |status: u16, code: &str, message: Option<&str>| Fault::Fcm {
        status,
        code: code.into(),
        message: message.map(str::to_owned),
    };
    // (fault, times, final state, attempts, first outcome)
    let cases: Vec<(Fault, Option<u64>, &str, i32, &str)> = vec![
        (
            fcm(404, "UNREGISTERED", None),
            None,
            "token_dead",
            1,
            "token_dead",
        ),
        (
            fcm(403, "SENDER_ID_MISMATCH", None),
            None,
            "token_dead",
            1,
            "token_dead",
        ),
        (
            fcm(
                400,
                "INVALID_ARGUMENT",
                Some("The registration token is not a valid FCM registration token"),
            ),
            None,
            "token_dead",
            1,
            "token_dead",
        ),
        (
            fcm(
                400,
                "INVALID_ARGUMENT",
                Some("Invalid value at 'message.android.ttl'"),
            ),
            None,
            "failed",
            1,
            "permanent",
        ),
        (
            fcm(503, "UNAVAILABLE", None),
            Some(1),
            "delivered",
            2,
            "transient",
        ),
        (
            fcm(500, "INTERNAL", None),
            Some(1),
            "delivered",
            2,
            "transient",
        ),
    ];
    let mut config = MockConfig::default();
    let mut devices = Vec::new();
    for (i, (fault, times, ..)) in cases.iter().enumerate() {
        let prefix = format!("case{i}-");
        config
            .faults
            .rules
            .push(rule(&prefix, fault.clone(), *times));
        devices.push(
            add_device(
                &pool,
                &format!("u{i}"),
                Platform::Android,
                &format!("{prefix}fcm-token"),
            )
            .await,
        );
    }
    // Quota: the retry waits at least a minute (Google's rule), so only the
    // schedule is checked. Third-party auth: a config error.
    config
        .faults
        .rules
        .push(rule("quota-", fcm(429, "QUOTA_EXCEEDED", None), None));
    let quota = add_device(&pool, "uq", Platform::Android, "quota-fcm-token").await;
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "fcm-codes");
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..cases.len())).await;
    wait_for(&pool, OPEN, 0).await;
    // Last: QUOTA_EXCEEDED holds the whole project's sends.
    notify_users(&pool, &["uq".to_string()]).await;
    wait_for(&pool, "SELECT count(*) FROM pushrelay.deliveries WHERE state IN ('pending', 'sending') AND attempts = 0", 0).await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE state IN ('pending', 'sending')",
        1,
    )
    .await;

    for ((fault, _, state, attempts, first), device) in cases.iter().zip(&devices) {
        let (got_state, got_attempts, outcomes) = delivery_of(&pool, *device).await;
        assert_eq!(
            (got_state.as_str(), got_attempts, outcomes[0].as_str()),
            (*state, *attempts, *first),
            "{fault:?}: {outcomes:?}"
        );
    }
    let wait_s: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM a.retry_at - a.finished_at)::float8 FROM pushrelay.attempts a
           JOIN pushrelay.deliveries d ON d.id = a.delivery_id WHERE d.device_id = $1",
    )
    .bind(quota)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        wait_s >= 60.0,
        "QUOTA_EXCEEDED must back off at least a minute, got {wait_s} s"
    );
    stop(daemon).await;

    // THIRD_PARTY_AUTH_ERROR pauses the app like a credential error.
    mock.set_faults(Faults {
        rules: vec![rule("", fcm(401, "THIRD_PARTY_AUTH_ERROR", None), None)],
        ..Default::default()
    });
    let (s, _) = settings_for(&mock, "fcm-codes-2");
    let device = add_device(&pool, "ux", Platform::Android, "third-party-fcm-token").await;
    let daemon = start(&pool, s);
    notify_users(&pool, &["ux".to_string()]).await;
    wait_for(&pool, &format!("SELECT count(*) FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id WHERE d.device_id = {device} AND a.outcome = 'config_error'"), 1).await;
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn one_provider_token_and_one_oauth_token_serve_many_requests_and_connections(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    seed_users(&pool, 100).await;
    let mock = MockProviders::start(MockConfig {
        oauth_expires_in_secs: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut s, routes) = settings_for(&mock, "tokens");
    let mut apns = routes.apns.clone();
    apns.connections = 4;
    let mut fcm = routes.fcm.clone();
    fcm.connections = 3;
    let app = s.apps.get_mut(APP).unwrap();
    app.ios = Some(ProviderSettings::Apns(apns));
    app.android = Some(ProviderSettings::Fcm(fcm));
    let daemon = start(&pool, s);
    notify_users(&pool, &users(1..101)).await;
    wait_for(&pool, DELIVERED, 200).await;

    let stats = mock.stats();
    assert_eq!(stats.accepted, 200);
    assert_eq!(
        stats.distinct_provider_jwts, 1,
        "one APNs provider token for all requests"
    );
    assert_eq!(daemon.providers.apns_signatures(), 1);
    assert!(
        stats.connections >= 5,
        "4 APNs + 3 FCM connections expected, saw {}",
        stats.connections
    );
    assert_eq!(
        stats.oauth_token_requests, 1,
        "100 concurrent FCM sends share one token fetch"
    );
    assert_eq!(daemon.providers.fcm_token_fetches(), 1);

    // The 3 s access token is refreshed before it expires.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    notify_users(&pool, &["u1".to_string()]).await;
    wait_for(&pool, DELIVERED, 202).await;
    assert_eq!(mock.stats().oauth_token_requests, 2);
    assert_eq!(mock.stats().distinct_provider_jwts, 1);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn retry_after_delays_the_retry_and_a_reset_connection_is_retried_once(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let limited = add_device(&pool, "u1", Platform::Ios, &ios_token("ca11", 1)).await;
    let reset = add_device(&pool, "u2", Platform::Ios, &ios_token("7e5e", 1)).await;
    let mut config = MockConfig::default();
    config.faults.rules = vec![
        rule(
            "ca11",
            Fault::RateLimited {
                retry_after_secs: 1,
            },
            Some(1),
        ),
        rule("7e5e", Fault::Reset, Some(1)),
    ];
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "retry-after");
    let daemon = start(&pool, s);
    notify_users(&pool, &["u1".to_string()]).await;
    wait_for(&pool, OPEN, 0).await;
    notify_users(&pool, &["u2".to_string()]).await;
    wait_for(&pool, OPEN, 0).await;

    let gap: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM b.started_at - a.finished_at)::float8
           FROM pushrelay.attempts a JOIN pushrelay.attempts b ON b.delivery_id = a.delivery_id AND b.attempt = 2
           JOIN pushrelay.deliveries d ON d.id = a.delivery_id
          WHERE a.attempt = 1 AND d.device_id = $1",
    )
    .bind(limited)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(gap >= 1.0, "retried {gap} s after a Retry-After of 1 s");

    let (state, attempts, outcomes) = delivery_of(&pool, reset).await;
    // The connection was lost after the request went out: resent without
    // spending the attempt.
    assert_eq!((state.as_str(), attempts), ("delivered", 1), "{outcomes:?}");
    let received = mock
        .received()
        .into_iter()
        .filter(|r| r.token == ios_token("7e5e", 1))
        .count();
    assert_eq!(
        received, 1,
        "the reset request must be delivered exactly once"
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn oversized_payloads_are_rejected_before_any_request(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_device(&pool, "u1", Platform::Ios, &ios_token("ab", 1)).await;
    add_device(&pool, "u1", Platform::Android, "android-oversized").await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let (s, _) = settings_for(&mock, "oversized");
    let daemon = start(&pool, s);
    sqlx::query("INSERT INTO pushrelay.notifications (app, user_id, title, body) VALUES ('bank', 'u1', 'Big', $1)")
        .bind("x".repeat(4200))
        .execute(&pool)
        .await
        .unwrap();
    wait_for(&pool, OPEN, 0).await;
    let errors: Vec<String> = sqlx::query_scalar(
        "SELECT last_error FROM pushrelay.deliveries WHERE state = 'failed' ORDER BY platform",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0].contains("too big") && errors[0].contains("4096"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("PayloadTooLarge") && errors[1].contains("4096"),
        "{}",
        errors[1]
    );
    assert_eq!(mock.stats().requests, 0);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn every_device_receives_exactly_the_expected_payload(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let ios = ios_token("ab", 7);
    add_device(&pool, "alice", Platform::Ios, &ios).await;
    add_device(&pool, "alice", Platform::Android, "alice-android-token").await;
    add_device(&pool, "bob", Platform::Android, "bob-android-token").await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let (s, _) = settings_for(&mock, "payloads");
    let daemon = start(&pool, s);
    notify_users(&pool, &["alice".to_string(), "bob".to_string()]).await;
    wait_for(&pool, DELIVERED, 3).await;
    let expires: i64 = sqlx::query_scalar(
        "SELECT floor(extract(epoch FROM send_at + make_interval(secs => ttl_seconds)))::bigint FROM pushrelay.notifications WHERE user_id = 'alice'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();

    let received = mock.received();
    assert_eq!(received.len(), 3);
    let apns: Vec<_> = received.iter().filter(|r| r.route == Route::Apns).collect();
    assert_eq!(apns.len(), 1);
    let a = apns[0];
    assert_eq!(a.token, ios);
    assert_eq!(a.headers["apns-topic"], MockConfig::default().apns_topic);
    assert_eq!(a.headers["apns-push-type"], "alert");
    assert_eq!(a.headers["apns-priority"], "10");
    assert_eq!(a.headers["apns-collapse-id"], "balance");
    assert_eq!(a.headers["apns-expiration"], expires.to_string());
    assert!(uuid::Uuid::parse_str(&a.headers["apns-id"]).is_ok());
    assert_eq!(
        a.body,
        serde_json::json!({
            "aps": {"alert": {"title": "Transfer received", "body": "You received 12.50 EUR from ACME."}, "sound": "default"},
            "kind": "transfer_received", "amount": "12.50", "currency": "EUR",
        })
    );

    let mut fcm: Vec<_> = received.iter().filter(|r| r.route == Route::Fcm).collect();
    fcm.sort_by(|x, y| x.token.cmp(&y.token));
    assert_eq!(
        fcm.iter().map(|r| r.token.as_str()).collect::<Vec<_>>(),
        ["alice-android-token", "bob-android-token"]
    );
    for r in fcm {
        assert!(r.headers["authorization"].starts_with("Bearer "));
        let m = &r.body["message"];
        assert_eq!(m["token"], r.token.as_str());
        assert_eq!(
            m["notification"],
            serde_json::json!({"title": "Transfer received", "body": "You received 12.50 EUR from ACME."})
        );
        assert_eq!(
            m["data"],
            serde_json::json!({"kind": "transfer_received", "amount": "12.50", "currency": "EUR"})
        );
        assert_eq!(m["android"]["priority"], "high");
        assert_eq!(m["android"]["collapse_key"], "balance");
        let ttl: i64 = m["android"]["ttl"]
            .as_str()
            .unwrap()
            .trim_end_matches('s')
            .parse()
            .unwrap();
        assert!((3500..=3600).contains(&ttl), "ttl {ttl}");
        assert_eq!(
            m.as_object().unwrap().len(),
            4,
            "no fields beyond token, notification, data, android: {m}"
        );
    }
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn the_client_respects_max_concurrent_streams(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    add_ios_users(&pool, "ab", 60).await;
    let mock = MockProviders::start(MockConfig {
        max_concurrent_streams: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut s, routes) = settings_for(&mock, "streams");
    let mut apns = routes.apns.clone();
    apns.connections = 1;
    s.apps.get_mut(APP).unwrap().ios = Some(ProviderSettings::Apns(apns));
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..60)).await;
    wait_for(&pool, OPEN, 0).await;
    // Sixty concurrent sends over one connection allowing one stream until
    // the provider token is accepted, then two: all queue for a stream,
    // none is refused or retried.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered' AND attempts = 1"
        )
        .await,
        60
    );
    assert_eq!(mock.stats().connections, 1);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn certificate_auth_and_per_device_environments(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let prod = add_device(&pool, "u1", Platform::Ios, &ios_token("ab", 1)).await;
    let sandbox = add_device_in(
        &pool,
        "u1",
        Platform::Ios,
        &ios_token("ab", 2),
        pushrelay::model::Environment::Sandbox,
    )
    .await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let (mut s, routes) = settings_for(&mock, "cert");
    let mut apns = routes.apns.clone();
    apns.team_id = None;
    apns.key_id = None;
    apns.key_file = None;
    apns.certificate_file = Some(routes.client_cert_file.clone());
    apns.certificate_key_file = Some(routes.client_key_file.clone());
    // Sandbox devices go to the sandbox gateway: here, nothing listens.
    apns.sandbox_url = "https://127.0.0.1:9".into();
    s.apps.get_mut(APP).unwrap().ios = Some(ProviderSettings::Apns(apns));
    let daemon = start(&pool, s);
    notify_users(&pool, &["u1".to_string()]).await;
    wait_for(&pool, &format!("SELECT count(*) FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id WHERE d.device_id = {sandbox}"), 1).await;
    wait_for(&pool, &format!("SELECT count(*) FROM pushrelay.deliveries WHERE device_id = {prod} AND state = 'delivered'"), 1).await;
    assert_eq!(
        mock.stats().distinct_provider_jwts,
        0,
        "certificate auth sends no JWT"
    );
    assert_eq!(mock.stats().accepted, 1);
    let (_, _, outcomes) = delivery_of(&pool, sandbox).await;
    assert_eq!(outcomes[0], "transient");
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn an_apns_410_older_than_the_devices_registration_keeps_the_device(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let an_hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
    // Both tokens were reported invalid an hour ago; "stale" was registered
    // two hours ago, "fresh" re-registered just now.
    let stale = add_device(&pool, "u1", Platform::Ios, &ios_token("aaaa", 1)).await;
    let fresh = add_device(&pool, "u1", Platform::Ios, &ios_token("bbbb", 1)).await;
    sqlx::query(
        "UPDATE pushrelay.devices SET updated_at = now() - interval '2 hours' WHERE id = $1",
    )
    .bind(stale)
    .execute(&pool)
    .await
    .unwrap();
    let mut config = MockConfig::default();
    for prefix in ["aaaa", "bbbb"] {
        config.faults.rules.push(rule(
            prefix,
            Fault::ApnsUnregisteredSince {
                timestamp_ms: an_hour_ago,
            },
            None,
        ));
    }
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "timestamp");
    let daemon = start(&pool, s);
    notify_users(&pool, &["u1".to_string()]).await;
    wait_for(&pool, OPEN, 0).await;
    let active = |id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT invalidated_at IS NULL FROM pushrelay.devices WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert!(
        !active(stale).await,
        "registered before the token died: invalidated"
    );
    assert!(
        active(fresh).await,
        "re-registered after the 410's timestamp: kept"
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn certificate_auth_from_a_pkcs12_file(_: PgPoolOptions, opts: PgConnectOptions) {
    use rustls::pki_types::pem::PemObject;
    let pool = pool(&opts).await;
    add_device(&pool, "u1", Platform::Ios, &ios_token("ab", 1)).await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let (mut s, routes) = settings_for(&mock, "pkcs12");

    // What Keychain's "Export…" produces: key and certificate, encrypted.
    let cert =
        rustls::pki_types::CertificateDer::from_pem_slice(mock.client_cert().cert_pem.as_bytes())
            .unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(
        mock.client_cert().key_pem.as_bytes(),
    )
    .unwrap();
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "apns",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            p12_keystore::LocalKeyId(vec![1, 2, 3, 4]),
            p12_keystore::PrivateKey::from_der(key.secret_pkcs8_der()).unwrap(),
            [p12_keystore::Certificate::from_der(&cert).unwrap()],
        )),
    );
    let p12 = routes.dir.join("apns.p12");
    std::fs::write(&p12, store.writer("s3cret").write().unwrap()).unwrap();

    let mut apns = routes.apns.clone();
    (apns.team_id, apns.key_id, apns.key_file) = (None, None, None);
    apns.pkcs12_file = Some(p12.clone());
    apns.pkcs12_password = pushrelay::config::Secret("wrong".into());
    s.apps.get_mut(APP).unwrap().ios = Some(ProviderSettings::Apns(apns.clone()));
    let err = pushrelay::providers::Providers::from_settings(&s)
        .err()
        .expect("a wrong password is refused")
        .to_string();
    assert!(
        err.contains("apps.bank.ios") && err.contains("pkcs12_password") && !err.contains("wrong"),
        "{err}"
    );

    apns.pkcs12_password = pushrelay::config::Secret("s3cret".into());
    assert!(
        !format!("{apns:?}").contains("s3cret"),
        "the password must not show in Debug output"
    );
    s.apps.get_mut(APP).unwrap().ios = Some(ProviderSettings::Apns(apns));
    let daemon = start(&pool, s);
    notify_users(&pool, &["u1".to_string()]).await;
    wait_for(&pool, DELIVERED, 1).await;
    assert_eq!(mock.stats().distinct_provider_jwts, 0);
    stop(daemon).await;
}

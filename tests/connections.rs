//! Dropped connections and provider rules, through the whole pipeline
//! against the mock over real HTTP/2 + TLS: GOAWAY mid-burst, REFUSED_STREAM
//! and reset connections cost no attempts; TooManyProviderTokenUpdates and a
//! skewed clock are told apart; the sandbox gateway signs with its own key.

mod common;

use std::collections::HashMap;

use common::mock::*;
use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pushrelay::config::ProviderSettings;
use pushrelay::mock::{Fault, MockConfig, MockProviders, Quota};
use pushrelay::mock_setup::write_credentials;
use pushrelay::model::Platform;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A counter's total over all its labels, as the daemon emitted it.
/// `#[sqlx::test]` runs on a current-thread runtime, so the daemon's tasks
/// see the recorder installed on the test's thread.
fn counter(metrics: &Snapshotter, name: &str) -> u64 {
    metrics
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == name)
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

/// Each token's count in the mock's records of accepted pushes.
fn received_per_token(mock: &MockProviders) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in mock.received() {
        *m.entry(r.token).or_insert(0) += 1;
    }
    m
}

const MORE_THAN_ONE_ATTEMPT: &str = "SELECT count(*) FROM pushrelay.deliveries WHERE attempts <> 1";

#[sqlx::test(migrations = false)]
async fn a_goaway_mid_burst_resends_the_unprocessed_streams_without_spending_attempts(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_ios_users(&pool, "a0", 300).await;
    let mut config = MockConfig::default();
    // Three requests in the burst make their connection go away.
    for n in [40, 140, 240] {
        config
            .faults
            .rules
            .push(rule(&ios_token("a0", n), Fault::GoAway, Some(1)));
    }
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "goaway");
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..300)).await;
    wait_for(&pool, DELIVERED, 300).await;

    // Two of them may land on one connection before it is gone.
    assert!(mock.stats().goaways >= 1, "{:?}", mock.stats());
    assert_eq!(count(&pool, MORE_THAN_ONE_ATTEMPT).await, 0);
    let per_token = received_per_token(&mock);
    assert_eq!(per_token.len(), 300);
    assert!(
        per_token.values().all(|&n| n == 1),
        "each push reached the provider exactly once"
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn refused_streams_are_resent_at_once_without_spending_attempts(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let recorder = DebuggingRecorder::new();
    let metrics = recorder.snapshotter();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let pool = pool(&opts).await;
    add_ios_users(&pool, "7ef0", 20).await;
    let mut config = MockConfig::default();
    config
        .faults
        .rules
        .push(rule("7ef0", Fault::RefusedStream, Some(1)));
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "refused");
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..20)).await;
    wait_for(&pool, DELIVERED, 20).await;

    assert_eq!(mock.stats().refused_streams, 20);
    assert_eq!(counter(&metrics, "pushrelay_provider_resends_total"), 20);
    assert_eq!(count(&pool, MORE_THAN_ONE_ATTEMPT).await, 0);
    // Re-sent inside the attempt: one receipt each, no failure recorded.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.attempts WHERE outcome <> 'delivered'"
        )
        .await,
        0
    );
    assert!(received_per_token(&mock).values().all(|&n| n == 1));
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_reset_connection_opens_no_breaker_and_spends_no_attempts(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let recorder = DebuggingRecorder::new();
    let metrics = recorder.snapshotter();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let pool = pool(&opts).await;
    add_ios_users(&pool, "a0", 200).await;
    let mut config = MockConfig::default();
    // Slow answers keep many streams in flight when the resets hit.
    config.faults.slow_rate = 0.5;
    config.faults.slow_ms = 100;
    for n in [20, 70, 120, 170] {
        config
            .faults
            .rules
            .push(rule(&ios_token("a0", n), Fault::Reset, Some(1)));
    }
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "reset");
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..200)).await;
    wait_for(&pool, DELIVERED, 200).await;

    assert!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.attempts WHERE outcome = 'transient'"
        )
        .await
            >= 4,
        "the reset sends are recorded"
    );
    assert_eq!(count(&pool, MORE_THAN_ONE_ATTEMPT).await, 0);
    assert_eq!(
        counter(&metrics, "pushrelay_provider_holds_total"),
        0,
        "no hold opened"
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn too_many_provider_token_updates_pauses_briefly_then_delivers(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let device = add_device(&pool, "u0", Platform::Ios, &ios_token("e4e4", 0)).await;
    let mut config = MockConfig {
        token_update_window_secs: 2,
        ..MockConfig::default()
    };
    // Makes the client re-sign right after its first token was accepted.
    config.faults.rules.push(rule(
        "e4e4",
        Fault::Apns {
            status: 403,
            reason: "ExpiredProviderToken".into(),
        },
        Some(1),
    ));
    let mock = MockProviders::start(config).await.unwrap();
    let (mut s, routes) = settings_for(&mock, "too-many");
    let mut apns = routes.apns.clone();
    apns.token_update_pause_secs = 1;
    s.apps.get_mut(APP).unwrap().ios = Some(ProviderSettings::Apns(apns));
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..1)).await;
    wait_for(&pool, DELIVERED, 1).await;

    assert!(mock.stats().token_updates_refused >= 1);
    let reasons: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT a.outcome, a.reason FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id
          WHERE d.device_id = $1 ORDER BY a.started_at",
    )
    .bind(device)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(reasons[0].0, "config_error", "{reasons:?}");
    assert!(reasons[0]
        .1
        .as_deref()
        .unwrap()
        .contains("TooManyProviderTokenUpdates"));
    assert_eq!(reasons.last().unwrap().0, "delivered");
    // The refused token was kept rather than replaced again.
    assert_eq!(daemon.providers.apns_signatures(), 2);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn an_expired_fresh_token_is_a_config_error_that_names_the_clock(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_device(&pool, "u0", Platform::Ios, &ios_token("c10c", 0)).await;
    // The provider's clock is two hours ahead of ours: every token we sign
    // looks two hours old.
    let mock = MockProviders::start(MockConfig {
        clock_skew_secs: 7200,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let (s, _) = settings_for(&mock, "clock");
    let daemon = start(&pool, s);
    notify_users(&pool, &users(0..1)).await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.attempts WHERE outcome = 'config_error'",
        1,
    )
    .await;
    let reason: String = sqlx::query_scalar("SELECT reason FROM pushrelay.attempts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(reason.contains("ExpiredProviderToken"), "{reason}");
    assert!(
        reason.contains("clock") && reason.contains("NTP"),
        "{reason}"
    );
    assert_eq!(mock.stats().accepted, 0);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn the_sandbox_gateway_signs_with_its_own_key(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let prod = add_device(&pool, "u1", Platform::Ios, &ios_token("ab", 1)).await;
    let sandbox = add_device_in(
        &pool,
        "u2",
        Platform::Ios,
        &ios_token("ab", 2),
        pushrelay::model::Environment::Sandbox,
    )
    .await;
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let (mut s, routes) = settings_for(&mock, "sandbox-key");
    // The mock only knows the production key: the sandbox key (same team,
    // its own key id) is refused there, which shows it is the one used.
    let other = mock.other_apns_key();
    let sandbox_key_file = routes.dir.join("AuthKey_SANDBOX.p8");
    std::fs::write(&sandbox_key_file, &other.p8_pem).unwrap();
    let mut apns = routes.apns.clone();
    apns.sandbox_key_id = Some("SANDBOX123".into());
    apns.sandbox_key_file = Some(sandbox_key_file);
    s.apps.get_mut(APP).unwrap().ios = Some(ProviderSettings::Apns(apns));
    let daemon = start(&pool, s);
    notify_users(&pool, &["u1".to_string(), "u2".to_string()]).await;
    wait_for(&pool, &format!("SELECT count(*) FROM pushrelay.deliveries WHERE device_id = {prod} AND state = 'delivered'"), 1).await;
    wait_for(&pool, &format!("SELECT count(*) FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id WHERE d.device_id = {sandbox} AND a.outcome = 'config_error'"), 1).await;
    assert_eq!(daemon.providers.apns_signatures(), 2, "one token per key");
    stop(daemon).await;
}

#[test]
fn a_sandbox_key_needs_its_id_and_file_and_token_auth() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt
        .block_on(MockProviders::start(MockConfig::default()))
        .unwrap();
    let routes = write_credentials(&mock, &temp_dir("sandbox-bad")).unwrap();
    let mut apns = routes.apns.clone();
    apns.sandbox_key_id = Some("SANDBOX123".into());
    let err = pushrelay::providers::apns::Apns::new(&apns, &mut Vec::new())
        .err()
        .expect("a sandbox key id without its file is refused");
    assert!(err.to_string().contains("sandbox_key_file"), "{err}");
    let mut cert = routes.apns.clone();
    cert.team_id = None;
    cert.key_id = None;
    cert.key_file = None;
    cert.certificate_file = Some(routes.client_cert_file.clone());
    cert.certificate_key_file = Some(routes.client_key_file.clone());
    cert.sandbox_key_id = Some("SANDBOX123".into());
    cert.sandbox_key_file = Some(routes.dir.join("x.p8"));
    let err = pushrelay::providers::apns::Apns::new(&cert, &mut Vec::new())
        .err()
        .expect("a sandbox key with certificate auth is refused");
    assert!(err.to_string().contains("token auth"), "{err}");
}

#[sqlx::test(migrations = false)]
async fn two_daemons_share_one_fcm_quota_and_a_quota_exceeded_slows_both(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    for i in 0..120 {
        add_device(
            &pool,
            &format!("u{i}"),
            Platform::Android,
            &format!("android-{i:04}"),
        )
        .await;
    }
    // Google grants 30 sends a second; each daemon is configured for 20.
    // Alone, each stays within the quota; two that did not share would send
    // 40 a second.
    let mock = MockProviders::start(MockConfig {
        fcm_quota: Some(Quota {
            limit: 30,
            window_secs: 1,
        }),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let daemon = |name: &str| {
        let (mut s, routes) = settings_for(&mock, name);
        let mut fcm = routes.fcm.clone();
        fcm.rate_per_minute = 1200;
        s.apps.get_mut(APP).unwrap().android = Some(ProviderSettings::Fcm(fcm));
        s.worker.id = name.into();
        // About 60 sends each at 10 a second (half of the 20 configured,
        // shared) take seconds; the wait for a limiter slot is outside the
        // 1 s send timeout, so none of them times out.
        s.worker.send_timeout_ms = 1_000;
        // Small fan-out batches, so both daemons take part of one burst.
        s.worker.fanout_batch = 10;
        start(&pool, s)
    };
    let one = daemon("one");
    let two = daemon("two");
    wait_for(&pool, "SELECT count(*) FROM pushrelay.workers", 2).await;
    // One sharing round after both are live.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    notify_users(&pool, &users(0..120)).await;
    wait_for(&pool, DELIVERED, 120).await;

    let stats = mock.stats();
    assert_eq!(stats.quota_exceeded, 0, "{:?}", stats.quota_windows);
    assert!(
        stats.quota_windows.iter().all(|&n| n <= 30),
        "{:?}",
        stats.quota_windows
    );
    let workers = count(
        &pool,
        "SELECT count(DISTINCT worker) FROM pushrelay.attempts WHERE outcome = 'delivered'",
    )
    .await;
    assert_eq!(workers, 2, "both daemons sent");
    let retried = count(
        &pool,
        "SELECT count(*) FROM pushrelay.attempts WHERE outcome <> 'delivered'",
    )
    .await;
    assert_eq!(retried, 0, "no send timed out waiting for the quota");

    // Google answers QUOTA_EXCEEDED (Retry-After 5 s) to one send, early
    // in the burst: both daemons slow the project's sends, not only the
    // one that saw it.
    mock.set_faults(pushrelay::mock::Faults {
        rules: vec![rule(
            "android-0000",
            Fault::RateLimited {
                retry_after_secs: 5,
            },
            Some(1),
        )],
        ..Default::default()
    });
    notify_users(&pool, &users(0..60)).await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.attempts WHERE status_code = 429 AND outcome = 'transient'",
        1,
    )
    .await;
    let saw: String = sqlx::query_scalar(
        "SELECT worker FROM pushrelay.attempts WHERE status_code = 429 AND outcome = 'transient'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let other = if saw == "one" { &two } else { &one };
    let project = MockConfig::default().fcm_project_id;
    let mut slowed = None;
    for _ in 0..100 {
        slowed = other.providers.fcm_quota_slowdown(&project);
        if slowed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        slowed.is_some(),
        "the other daemon slows the project's sends too"
    );
    // The rest are delivered; the refused send itself waits out Google's
    // minimum back-off of a minute.
    wait_for(&pool, DELIVERED, 179).await;
    stop(one).await;
    stop(two).await;
}

//! The misconfiguration guard, app-wide configuration errors and the
//! circuit breaker, through the whole pipeline against the mock providers:
//! a wrong topic, gateway or Firebase project must pause sends, not wipe
//! the fleet; a dormant campaign still invalidates its dead tokens.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::mock::*;
use common::*;
use pushrelay::config::ProviderSettings;
use pushrelay::mock::{Fault, MockConfig, MockProviders};
use pushrelay::model::{Environment, Platform};
use pushrelay::store::holds;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Users `u0`…`u{n-1}`, each with a production iPhone (tokens `ab…`) and
/// a sandbox one (tokens `5a…`, which the mock takes for sandbox tokens).
async fn add_both_environments(pool: &PgPool, n: u32) {
    for i in 0..n {
        let user = format!("u{i}");
        let prod = ios_token("ab", i);
        add_device_in(pool, &user, Platform::Ios, &prod, Environment::Production).await;
        let sandbox = ios_token("5a", i);
        add_device_in(pool, &user, Platform::Ios, &sandbox, Environment::Sandbox).await;
    }
}

/// One inline notification to each of `u0`…`u{n-1}`.
async fn notify_all(pool: &PgPool, n: u32) {
    notify_range(pool, 0, n, "urgent").await;
}

/// Watches the number of invalidated devices; `peak()` is the highest seen.
struct Peak {
    max: Arc<AtomicI64>,
    done: Arc<AtomicBool>,
}

impl Peak {
    fn watch(pool: &PgPool) -> Peak {
        let (max, done) = (
            Arc::new(AtomicI64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (pool, m, d) = (pool.clone(), max.clone(), done.clone());
        tokio::spawn(async move {
            while !d.load(Ordering::Relaxed) {
                let n = count(&pool, INVALIDATED).await;
                m.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Peak { max, done }
    }

    fn peak(&self) -> i64 {
        self.done.store(true, Ordering::Relaxed);
        self.max.load(Ordering::Relaxed)
    }
}

const INVALIDATED: &str = "SELECT count(*) FROM pushrelay.devices WHERE invalidated_at IS NOT NULL";
const PENDING: &str = "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'pending'";

/// A daemon against a mock playing `config`, whose breaker judges as few
/// as 5 answers and holds for 30 s.
async fn start_with_sensitive_breaker(
    pool: &PgPool,
    config: MockConfig,
    name: &str,
) -> (MockProviders, Running) {
    let mock = MockProviders::start(config).await.unwrap();
    let (mut s, _) = settings_for(&mock, name);
    s.worker.breaker_threshold = 5;
    s.worker.breaker_cooldown_secs = 30;
    let daemon = start(pool, s);
    (mock, daemon)
}

async fn pauses(pool: &PgPool) -> String {
    pushrelay::cli::render_holds(&holds::active(pool, None).await.unwrap())
}

/// Waits until every device is active again and every delivery pending,
/// then checks what a user would: nothing lost, pauses explained.
async fn assert_paused_not_wiped(pool: &PgPool, peak: &Peak, devices: i64) {
    wait_for(pool, INVALIDATED, 0).await;
    wait_for(pool, PENDING, devices).await;
    // Restoration runs again shortly after a trip; let it, then re-check.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(count(pool, INVALIDATED).await, 0);
    assert_eq!(
        count(pool, PENDING).await,
        devices,
        "nothing accepted is lost"
    );
    let peak = peak.peak();
    eprintln!("devices invalidated at the peak, all restored since: {peak}");
    assert!(
        peak <= 30,
        "at most a handful of devices may be invalidated (and restored) on the way; peak {peak}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_wrong_topic_and_a_wrong_firebase_project_pause_instead_of_wiping_devices(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    for i in 0..200 {
        let user = format!("u{i}");
        add_device(&pool, &user, Platform::Ios, &ios_token("ab", i)).await;
        add_device(&pool, &user, Platform::Android, &format!("android-{i}")).await;
    }
    let mut config = MockConfig::default();
    config.faults.rules = vec![
        rule(
            "ab",
            Fault::Apns {
                status: 400,
                reason: "DeviceTokenNotForTopic".into(),
            },
            None,
        ),
        rule(
            "android-",
            Fault::Fcm {
                status: 403,
                code: "SENDER_ID_MISMATCH".into(),
                message: None,
            },
            None,
        ),
    ];
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "topic");
    let peak = Peak::watch(&pool);
    let daemon = start(&pool, s);
    notify_all(&pool, 200).await;
    assert_paused_not_wiped(&pool, &peak, 400).await;

    let status = pauses(&pool).await;
    assert!(status.contains("bank/ios/production"), "{status}");
    assert!(status.contains("bundle id"), "{status}");
    assert!(status.contains("bank/android/production"), "{status}");
    assert!(status.contains("Firebase project"), "{status}");
    // The daemon kept running and stops cleanly.
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn swapped_gateway_urls_pause_both_environments_instead_of_wiping_devices(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_both_environments(&pool, 200).await;
    let mock = MockProviders::start(MockConfig {
        apns_sandbox_token_prefixes: vec!["5a".into()],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let (mut s, routes) = settings_for(&mock, "gateways");
    let mut apns = routes.apns.clone();
    std::mem::swap(&mut apns.production_url, &mut apns.sandbox_url);
    s.apps.get_mut(APP).unwrap().ios = Some(ProviderSettings::Apns(apns));
    let peak = Peak::watch(&pool);
    let daemon = start(&pool, s);
    notify_all(&pool, 200).await;
    assert_paused_not_wiped(&pool, &peak, 400).await;

    let status = pauses(&pool).await;
    assert!(status.contains("bank/ios/production"), "{status}");
    assert!(status.contains("bank/ios/sandbox"), "{status}");
    assert!(status.contains("gateway"), "{status}");
    assert_eq!(mock.stats().accepted, 0);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn the_right_gateways_deliver_to_both_environments(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    add_both_environments(&pool, 20).await;
    let mock = MockProviders::start(MockConfig {
        apns_sandbox_token_prefixes: vec!["5a".into()],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let (s, _) = settings_for(&mock, "right-gateways");
    let daemon = start(&pool, s);
    notify_all(&pool, 20).await;
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(count(&pool, DELIVERED).await, 40);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_dormant_campaign_still_invalidates_exactly_the_dead_tokens(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    for i in 0..200 {
        // A quarter of the segment uninstalled the app long ago.
        let prefix = if i % 4 == 0 { "dead" } else { "ab" };
        add_device(
            &pool,
            &format!("u{i}"),
            Platform::Ios,
            &ios_token(prefix, i),
        )
        .await;
    }
    let mut config = MockConfig::default();
    config.faults.rules = vec![rule("dead", Fault::Unregistered, None)];
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "dormant");
    let daemon = start(&pool, s);
    notify_all(&pool, 200).await;
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(count(&pool, INVALIDATED).await, 50);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.devices WHERE invalidated_at IS NOT NULL AND token NOT LIKE 'dead%'").await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'token_dead'"
        )
        .await,
        50
    );
    assert!(holds::active(&pool, None).await.unwrap().is_empty());
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn an_app_wide_reason_pauses_only_that_environment(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    add_both_environments(&pool, 10).await;
    let mut config = MockConfig {
        apns_sandbox_token_prefixes: vec!["5a".into()],
        ..MockConfig::default()
    };
    config.faults.rules = vec![rule(
        "5a",
        Fault::Apns {
            status: 400,
            reason: "BadTopic".into(),
        },
        None,
    )];
    let mock = MockProviders::start(config).await.unwrap();
    let (s, _) = settings_for(&mock, "app-wide");
    let daemon = start(&pool, s);
    notify_all(&pool, 10).await;
    wait_for(&pool, DELIVERED, 10).await;
    wait_for(&pool, PENDING, 10).await;
    // Production keeps delivering while sandbox is paused.
    notify_all(&pool, 10).await;
    wait_for(&pool, DELIVERED, 20).await;
    wait_for(&pool, PENDING, 20).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.deliveries d JOIN pushrelay.devices v ON v.id = d.device_id WHERE d.state = 'pending' AND v.environment = 'sandbox' AND d.attempts = 0").await,
        20,
        "the paused environment's deliveries keep their attempts"
    );
    assert_eq!(count(&pool, INVALIDATED).await, 0);
    let status = pauses(&pool).await;
    assert!(status.contains("bank/ios/sandbox"), "{status}");
    assert!(status.contains("BadTopic"), "{status}");
    assert!(!status.contains("bank/ios/production"), "{status}");
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn rare_connection_resets_do_not_open_the_breaker(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    add_ios_users(&pool, "ab", 400).await;
    let mut config = MockConfig::default();
    config.faults.reset_rate = 0.01;
    // A sensitive breaker: still only failure rates open it.
    let (_mock, daemon) = start_with_sensitive_breaker(&pool, config, "resets").await;
    notify_all(&pool, 400).await;
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(count(&pool, DELIVERED).await, 400);
    assert!(holds::active(&pool, None).await.unwrap().is_empty());
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_provider_failing_everything_with_503_opens_the_breaker(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_ios_users(&pool, "ab", 20).await;
    let mut config = MockConfig::default();
    config.faults.unavailable_rate = 1.0;
    let (mock, daemon) = start_with_sensitive_breaker(&pool, config, "503").await;
    notify_all(&pool, 20).await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.provider_holds WHERE kind = 'breaker' AND platform = 'ios' AND environment = 'production'",
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // sends in flight land
    let seen = mock.stats().requests;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        mock.stats().requests,
        seen,
        "the open breaker holds the sends"
    );
    assert_eq!(count(&pool, PENDING).await, 20);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_pause_recorded_by_another_process_is_honoured(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    add_ios_users(&pool, "ab", 10).await;
    // Another daemon's guard tripped a moment ago.
    sqlx::query(
        "INSERT INTO pushrelay.provider_holds
             (app, platform, environment, worker, kind, reason, hint, paused_until)
         VALUES ('bank', 'ios', 'production', 'other:1:0000', 'guard', 'a burst', 'check the topic',
                 now() + interval '60 seconds')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let (s, _) = settings_for(&mock, "remote");
    let daemon = start(&pool, s);
    // Each lane reads the holds when it starts, then every second; the
    // notifications come after that first read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    notify_all(&pool, 10).await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'pending' AND next_attempt_at > now() + interval '30 seconds'",
        10,
    )
    .await;
    assert_eq!(
        mock.stats().requests,
        0,
        "the other process's pause is honoured"
    );
    let status = pauses(&pool).await;
    assert!(
        status.contains("bank/ios/production") && status.contains("check the topic"),
        "{status}"
    );
    stop(daemon).await;
}

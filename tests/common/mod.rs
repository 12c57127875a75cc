//! Shared test harness: a migrated pool on the test's own database, test
//! settings with fast retries, and a worker running in the background.
#![allow(dead_code)]

pub mod api;
pub mod browser;
pub mod console;
#[cfg(feature = "mock")]
pub mod mock;
pub mod moto;

use std::path::Path;
use std::time::{Duration, Instant};

use pushrelay::app::App;
use pushrelay::config::{AppSettings, ProviderSettings, Settings};
use pushrelay::config::{Behaviour, SimulatorRule as Rule};
use pushrelay::model::{Environment, Platform};
use pushrelay::providers::Providers;
use pushrelay::store::devices::{self, NewDevice};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub const APP: &str = "bank";

/// A pool of its own on the test database (several per test simulate
/// several processes), with the schema applied the way `migrate` does.
pub async fn pool(opts: &PgConnectOptions) -> PgPool {
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(opts.clone())
        .await
        .expect("connect to the test database");
    pushrelay::store::migrate(&pool).await.expect("migrate");
    pool
}

/// Settings for tests: one app on the simulator, millisecond retries, a
/// short poll, and the simulator rules the tests rely on.
pub fn settings() -> Settings {
    let mut s = Settings::default();
    s.templates.dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    s.apps.insert(
        APP.into(),
        AppSettings {
            default_locale: "en".into(),
            quiet_hours: None,
            ios: Some(ProviderSettings::Simulator),
            android: Some(ProviderSettings::Simulator),
        },
    );
    s.worker.poll_interval_ms = 50;
    s.worker.send_timeout_ms = 2_000;
    s.worker.config_error_pause_secs = 30;
    s.retry.urgent.base_ms = 100;
    s.retry.urgent.min_delay_ms = 10;
    s.retry.urgent.cap_ms = 2_000;
    s.simulator.latency_ms = 1;
    s.simulator.latency_jitter_ms = 2;
    let rule = |prefix: &str, behaviour, times| Rule {
        token_prefix: prefix.into(),
        behaviour,
        times,
        retry_after_secs: None,
    };
    s.simulator.rules = vec![
        rule("dead", Behaviour::Unregistered, None),
        rule("bad0", Behaviour::BadMessage, None),
        rule("fa11", Behaviour::Transient, Some(4)),
        Rule {
            retry_after_secs: Some(1),
            ..rule("ca11", Behaviour::RateLimited, Some(1))
        },
        rule("c0f1", Behaviour::ConfigError, None),
        rule("510e", Behaviour::Timeout, None),
    ];
    s
}

/// A second app, iOS only, for keys limited to one app and for a
/// platform an app has no provider for.
pub const SHOP: &str = "shop";

/// [`settings`] with [`SHOP`] beside [`APP`].
pub fn two_apps() -> Settings {
    let mut s = settings();
    s.apps.insert(
        SHOP.into(),
        AppSettings {
            default_locale: "en".into(),
            quiet_hours: None,
            ios: Some(ProviderSettings::Simulator),
            android: None,
        },
    );
    s
}

pub use pushrelay::app::Running;

pub fn start(pool: &PgPool, settings: Settings) -> Running {
    App::with_pool(settings, pool.clone()).expect("app").spawn()
}

/// Starts a worker with the given providers (two workers sharing one
/// simulator can then be compared against one request count).
pub fn start_with(pool: &PgPool, settings: Settings, providers: Providers) -> Running {
    let mut app = App::with_pool(settings, pool.clone()).expect("app");
    app.providers = providers;
    app.spawn()
}

/// Stops a worker gracefully and checks it ended cleanly.
pub async fn stop(running: Running) {
    running
        .shutdown()
        .await
        .expect("the worker stopped with an error");
}

/// A valid-looking APNs token starting with `prefix` (hex), unique per `n`.
pub fn ios_token(prefix: &str, n: u32) -> String {
    format!("{prefix}{:0>width$x}", n, width = 64 - prefix.len())
}

pub async fn add_device(pool: &PgPool, user: &str, platform: Platform, token: &str) -> i64 {
    add_device_in(pool, user, platform, token, Environment::Production).await
}

pub async fn add_device_in(
    pool: &PgPool,
    user: &str,
    platform: Platform,
    token: &str,
    environment: Environment,
) -> i64 {
    devices::register(
        pool,
        &NewDevice {
            app: APP,
            user_id: user,
            platform,
            token,
            environment,
            locale: "en",
            timezone: "UTC",
        },
    )
    .await
    .expect("register device")
}

/// Users `u0`…`u{n-1}`, each with one iOS device whose token starts with
/// `prefix` (which picks the simulator's or the mock's behaviour).
pub async fn add_ios_users(pool: &PgPool, prefix: &str, n: u32) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n as usize);
    for i in 0..n {
        ids.push(add_device(pool, &format!("u{i}"), Platform::Ios, &ios_token(prefix, i)).await);
    }
    ids
}

/// `users` users `u1`… each with an iOS and an Android device.
pub async fn seed_users(pool: &PgPool, users: u32) {
    sqlx::query(
        "INSERT INTO pushrelay.devices (app, user_id, platform, token)
         SELECT 'bank', 'u' || i, p,
                CASE p WHEN 'ios' THEN md5('i' || i) || md5('j' || i) ELSE 'android-' || i END
           FROM generate_series(1, $1) i, (VALUES ('ios'), ('android')) v(p)",
    )
    .bind(users as i32)
    .execute(pool)
    .await
    .expect("seed devices");
}

/// One inline notification to each of users `u{from}`…`u{to-1}`.
pub async fn notify_range(pool: &PgPool, from: u32, to: u32, priority: &str) {
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, body, priority)
         SELECT 'bank', 'u' || i, 'hello', $3 FROM generate_series($1, $2 - 1) i",
    )
    .bind(from as i32)
    .bind(to as i32)
    .bind(priority)
    .execute(pool)
    .await
    .unwrap();
}

/// Polls `sql` (a query returning one bigint) until it returns `want`.
/// The bound only keeps a broken build from hanging; it is not a timing
/// assertion.
pub async fn wait_for(pool: &PgPool, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = -1;
    while Instant::now() < deadline {
        last = sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .expect("wait_for query");
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("waited 30 s for `{sql}` to be {want}; last value {last}");
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count query")
}

/// Deliveries not yet in a final state.
pub const OPEN: &str =
    "SELECT (SELECT count(*) FROM pushrelay.notifications WHERE state = 'pending')
          + (SELECT count(*) FROM pushrelay.deliveries WHERE state IN ('pending', 'sending'))";

/// Deliveries the provider accepted.
pub const DELIVERED: &str = "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered'";

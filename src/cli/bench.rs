//! `pushrelay bench`: end-to-end throughput and latency of the pipeline.
//!
//! It works in its own database (`<configured name>_bench`, recreated each
//! run) so it never touches real data. Two phases, both through the outbox
//! table and the real daemon:
//!
//! 1. *throughput*: seed the devices and a backlog of notifications, start
//!    the daemon, time until every delivery is accepted by the provider;
//! 2. *latency*: a producer inserts notifications at a steady rate while the
//!    daemon runs; latency is enqueue (`created_at`) → provider accepted.
//!
//! The last line printed is machine-readable.

use std::time::{Duration, Instant};

use clap::Args;

use crate::app::App;
use crate::config::{AppSettings, ProviderSettings, Settings};
use crate::mock::{Faults, MockConfig, MockProviders};
use crate::mock_setup::write_credentials;
use crate::{store as db, telemetry};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Users to seed; each has an iOS and an Android device.
    #[arg(long, default_value_t = 50_000)]
    pub users: u32,
    /// Notifications in the throughput backlog (each → 2 deliveries).
    #[arg(long, default_value_t = 100_000)]
    pub notifications: u32,
    /// Notifications per second in the latency phase.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    /// Seconds the latency phase lasts.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Simulated provider latency (ms), plus up to --jitter-ms more.
    #[arg(long, default_value_t = 2)]
    pub latency_ms: u64,
    #[arg(long, default_value_t = 3)]
    pub jitter_ms: u64,
    /// Share of sends the provider fails transiently (retried).
    #[arg(long, default_value_t = 0.0)]
    pub transient_rate: f64,
    /// `mock`: the real APNs and FCM clients over HTTP/2+TLS to in-process
    /// mock servers. `simulator`: the in-process simulator (no network).
    #[arg(long, default_value = "mock", value_parser = ["mock", "simulator"])]
    pub provider: String,
}

const APP: &str = "bench";

pub async fn run(mut settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_none() {
        settings.telemetry.level = "warn".into();
    }
    telemetry::init(&settings.telemetry);
    let base = db::connect_options(&settings.database.url)?;
    let name = format!("{}_bench", base.get_database().unwrap_or("pushrelay"));
    // Same server and credentials, another database.
    let mut url = reqwest::Url::parse(&settings.database.url)?;
    url.set_path(&name);
    settings.database.url = url.to_string();
    db::recreate_database(&settings.database.url).await?;
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool).await?;

    let mock = if args.provider == "mock" {
        let faults = Faults {
            slow_rate: 1.0, // every answer takes latency_ms, like the simulator
            slow_ms: args.latency_ms,
            unavailable_rate: args.transient_rate,
            ..Default::default()
        };
        let mock = MockProviders::start(MockConfig {
            faults,
            record: false,
            ..Default::default()
        })
        .await?;
        let dir = std::env::temp_dir().join(format!("pushrelay-bench-{}", std::process::id()));
        Some((write_credentials(&mock, &dir)?, mock))
    } else {
        None
    };
    let (ios, android) = match &mock {
        Some((routes, _)) => {
            let mut apns = routes.apns.clone();
            apns.connections = 4;
            let mut fcm = routes.fcm.clone();
            fcm.connections = 4;
            (ProviderSettings::Apns(apns), ProviderSettings::Fcm(fcm))
        }
        None => (ProviderSettings::Simulator, ProviderSettings::Simulator),
    };
    settings.apps.clear();
    settings.apps.insert(
        APP.into(),
        AppSettings {
            default_locale: "en".into(),
            ios: Some(ios),
            android: Some(android),
        },
    );
    settings.simulator.latency_ms = args.latency_ms;
    settings.simulator.latency_jitter_ms = args.jitter_ms;
    settings.simulator.transient_error_rate = args.transient_rate;
    settings.simulator.rules.clear();
    settings.retry.urgent.base_ms = 100;
    settings.validate()?;

    println!(
        "seeding {} users × 2 devices and {} notifications…",
        args.users, args.notifications
    );
    sqlx::query(
        "INSERT INTO pushrelay.devices (app, user_id, platform, token, locale)
         SELECT $1, 'u' || i, p.platform,
                CASE p.platform WHEN 'ios' THEN md5('i' || i) || md5('j' || i) ELSE 'bench-android:' || i END,
                CASE WHEN i % 3 = 0 THEN 'pt-BR' ELSE 'en' END
           FROM generate_series(1, $2) i, (VALUES ('ios'), ('android')) p(platform)",
    )
    .bind(APP)
    .bind(args.users as i32)
    .execute(&pool)
    .await?;
    let chunk = 10_000;
    for start in (0..args.notifications).step_by(chunk) {
        let end = (start + chunk as u32).min(args.notifications);
        insert_notifications(&pool, start as i32, end as i32, args.users as i32).await?;
    }
    sqlx::query("ANALYZE").execute(&pool).await?;
    let expected = args.notifications as i64 * 2;

    let app = App::with_pool(settings, pool.clone())?;
    let provider_counts = app.providers.clone();
    let started_db: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&pool)
        .await?;
    let started = Instant::now();
    let daemon = app.spawn();

    // Phase 1: drain the backlog.
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pushrelay.deliveries WHERE state NOT IN ('pending', 'sending')",
        )
        .fetch_one(&pool)
        .await?;
        if done >= expected {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "throughput phase did not finish in 10 minutes ({done}/{expected})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (delivered, last): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT count(*), max(a.finished_at) FROM pushrelay.deliveries d
           JOIN pushrelay.attempts a ON a.delivery_id = d.id AND a.outcome = 'delivered'",
    )
    .fetch_one(&pool)
    .await?;
    let secs = (last.unwrap_or(started_db) - started_db).num_milliseconds() as f64 / 1000.0;
    let throughput = delivered as f64 / secs.max(0.001);
    println!("throughput: {delivered} of {expected} deliveries accepted in {secs:.2} s = {throughput:.0} deliveries/s");

    // Phase 2: steady producer.
    let phase2: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&pool)
        .await?;
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate as f64 * tick.as_secs_f64()).round().max(1.0) as i32;
    let mut next = args.notifications as i32;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let producer_start = Instant::now();
    while producer_start.elapsed() < Duration::from_secs(args.duration) {
        interval.tick().await;
        insert_notifications(&pool, next, next + per_tick, args.users as i32).await?;
        next += per_tick;
    }
    let produced = (next - args.notifications as i32) as i64;
    crate::store::status::wait_until_settled(&pool, APP, Duration::from_secs(60)).await?;
    daemon.shutdown().await?;
    let (n, p50, p99): (i64, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)
           FROM (SELECT (extract(epoch FROM a.finished_at - n.created_at) * 1000)::float8 AS ms
                   FROM pushrelay.notifications n
                   JOIN pushrelay.deliveries d ON d.notification_id = n.id
                   JOIN pushrelay.attempts a ON a.delivery_id = d.id AND a.outcome = 'delivered'
                  WHERE n.created_at >= $1) l",
    )
    .bind(phase2)
    .fetch_one(&pool)
    .await?;
    let (p50, p99) = (p50.unwrap_or(f64::NAN), p99.unwrap_or(f64::NAN));
    let achieved = produced as f64 / args.duration as f64;
    println!(
        "latency: {produced} notifications at {achieved:.0}/s → {n} deliveries; enqueue → accepted p50 {p50:.1} ms, p99 {p99:.1} ms"
    );
    let rss = peak_rss_mb();
    match &mock {
        Some((_, mock)) => {
            let s = mock.stats();
            println!(
                "providers: real APNs + FCM clients → mock servers over HTTP/2+TLS ({} ms per answer); \
                 {} requests over {} connections; APNs JWTs signed {} (distinct seen by the mock {}), \
                 FCM OAuth token fetches {}",
                args.latency_ms,
                s.requests,
                s.connections,
                provider_counts.apns_signatures(),
                s.distinct_provider_jwts,
                s.oauth_token_requests
            );
            println!("peak RSS {rss} MB (daemon, mock servers and bench producer in one process)");
        }
        None => println!(
            "providers: in-process simulator, {}–{} ms per answer; peak RSS {rss} MB \
             (daemon and bench producer in one process)",
            args.latency_ms,
            args.latency_ms + args.jitter_ms
        ),
    }
    println!(
        "deliveries_per_sec={throughput:.0} p50_ms={p50:.1} p99_ms={p99:.1} peak_rss_mb={rss}"
    );
    Ok(())
}

async fn insert_notifications(
    pool: &sqlx::PgPool,
    from: i32,
    to: i32,
    users: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, template, data, priority, ttl_seconds)
         SELECT $1, 'u' || (1 + (i * 7919) % $4), 'transfer_received',
                jsonb_build_object('amount', (i % 1000) || '.00', 'currency', 'EUR', 'sender', 'Bench ' || i),
                'urgent', 3600
           FROM generate_series($2, $3 - 1) i",
    )
    .bind(APP)
    .bind(from)
    .bind(to)
    .bind(users)
    .execute(pool)
    .await?;
    Ok(())
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

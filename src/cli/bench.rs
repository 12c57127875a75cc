//! `pushrelay bench`: end-to-end throughput and latency of the daemon,
//! measured from outside it.
//!
//! The bench only orchestrates. The daemons (`--processes` of them, run from
//! `--daemon-bin`, by default this binary, so an older build can be compared
//! in the same run) and the mock APNs/FCM servers are separate processes, so
//! the CPU and memory figures are the daemons' alone. It works in its own
//! database (`<configured name>_bench`, recreated each run) and writes the
//! daemons' config — only keys every release understands — and their logs
//! into `<tmp>/pushrelay-bench-<pid>/`, removed after a successful run.
//!
//! 1. *throughput*: seed the devices and a backlog of urgent notifications,
//!    start the daemons and wait until the backlog is drained. Rate: the
//!    deliveries accepted over first fan-out → last acceptance. CPU per
//!    delivery, from `/proc`, between the daemons' start and the drain: the
//!    daemons', and PostgreSQL's (postmaster and children, less the bench's
//!    own connection) when the server runs on this machine;
//! 2. *latency*: a producer inserts notifications at a steady rate; latency
//!    is enqueue (`created_at`) → provider accepted (the delivered attempt's
//!    `finished_at`);
//! 3. *priority* (with `--priority-backlog`): a backlog of bulk
//!    notifications, and urgent alerts at a steady rate while it drains:
//!    the alerts' latency and the bulk drain rate.
//!
//! With `--campaign N` the bench measures a marketing campaign instead:
//! N devices (half iOS, half Android, five timezones) are seeded besides
//! the `--users`, urgent alerts go to those users at `--alert-rate` for
//! `--alert-duration` with no campaign (the comparison), then an
//! unthrottled bulk campaign to the N devices is created through
//! `store::campaigns` and the daemons' pump runs it while the alerts go
//! on at the same rate until every target is handed over. The report: the
//! campaign's devices per second (start → last acceptance), the daemons'
//! peak RSS, and the alerts' enqueue → accepted with and without it.
//!
//! With `--faults mobile` the bench measures delivery quality instead: the
//! mock plays a fault mix, a producer inserts notifications at `--rate`,
//! and the report says which share of the deliverable ones was accepted
//! before it expired, whether anything was sent after expiry, the attempts
//! per delivery, the latency, and the duplicates the mock accepted.
//!
//! The bench watches progress through one connection with two cheap counts
//! every 200 ms. The last line printed is machine-readable.

mod child;
mod procfs;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::config::Settings;
use crate::model::Priority;
use crate::store as db;
use child::Daemon;
use procfs::PostgresCpu;

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
    /// Extra random latency of the simulator (the mock servers have none).
    #[arg(long, default_value_t = 3)]
    pub jitter_ms: u64,
    /// Share of sends the provider fails transiently (retried).
    #[arg(long, default_value_t = 0.0)]
    pub transient_rate: f64,
    /// `mock`: the daemons' real APNs and FCM clients over HTTP/2+TLS to mock
    /// servers in their own process. `simulator`: the daemons' in-process
    /// simulator (no network).
    #[arg(long, default_value = "mock", value_parser = ["mock", "simulator"])]
    pub provider: String,
    /// Daemon processes sharing the database.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub processes: u32,
    /// The pushrelay binary that migrates and runs as the daemons (default:
    /// this one), e.g. an older build to compare with. The mock servers
    /// always run from this one.
    #[arg(long)]
    pub daemon_bin: Option<PathBuf>,
    /// Bulk notifications queued for the priority phase (0 skips the phase).
    #[arg(long, default_value_t = 0)]
    pub priority_backlog: u32,
    /// Urgent alerts per second inserted while the bulk backlog drains (or
    /// the campaign runs, with --campaign).
    #[arg(long, default_value_t = 100)]
    pub alert_rate: u32,
    /// Seconds the urgent alerts go on.
    #[arg(long, default_value_t = 10)]
    pub alert_duration: u64,
    /// Measure delivery quality under a provider fault mix instead of speed.
    /// `mobile`: 5 % 503, 2 % 429 with Retry-After 1 s, 1 % answered after
    /// the send timeout (accepted, answer late), --reset-rate connection
    /// resets, 1 % dead tokens; notifications at --rate for --duration.
    #[arg(long, value_parser = ["mobile"])]
    pub faults: Option<String>,
    /// Share of requests whose connection is dropped, with --faults.
    #[arg(long, default_value_t = 0.001)]
    pub reset_rate: f64,
    /// Time to live of the notifications with --faults (seconds).
    #[arg(long, default_value_t = 300)]
    pub ttl: u32,
    /// Measure a campaign to this many devices instead (urgent alerts at
    /// --alert-rate to the --users meanwhile, and for --alert-duration
    /// without it).
    #[arg(long, conflicts_with = "faults", value_parser = clap::value_parser!(u32).range(2..))]
    pub campaign: Option<u32>,
}

/// The `mobile` fault mix's send timeout, and how late the slow answers
/// come: after the timeout, so those sends are retried although the
/// provider took them.
const FAULT_SEND_TIMEOUT_MS: u64 = 2_000;
const FAULT_SLOW_MS: u64 = 3_000;
/// The `mobile` mix's shares of requests: 503, 429 (with this Retry-After),
/// and answered after the send timeout.
const FAULT_UNAVAILABLE: f64 = 0.05;
const FAULT_RATE_LIMITED: f64 = 0.02;
const FAULT_RETRY_AFTER_SECS: u64 = 1;
const FAULT_SLOW: f64 = 0.01;
/// One user in this many has dead tokens in the `mobile` mix (1 %).
const FAULT_DEAD_EVERY: i32 = 100;

const SEED_DEVICES: &str = include_str!("bench/seed_devices.sql");
const THROUGHPUT: &str = include_str!("bench/throughput.sql");
const BULK_DRAIN: &str = include_str!("bench/bulk_drain.sql");
const IS_OPEN: &str = include_str!("bench/is_open.sql");
const OPEN_COUNTS: &str = include_str!("bench/open_counts.sql");
const LATENCIES: &str = include_str!("bench/latencies.sql");
const INSERT_NOTIFICATIONS: &str = include_str!("bench/insert_notifications.sql");
const QUALITY: &str = include_str!("bench/quality.sql");
const SEED_CAMPAIGN_DEVICES: &str = include_str!("bench/seed_campaign_devices.sql");
const CAMPAIGN_THROUGHPUT: &str = include_str!("bench/campaign_throughput.sql");
/// The bench's statements, checked against the schema like the store's.
pub const STATEMENTS: &[(&str, &str)] = &[
    ("bench/seed_devices", SEED_DEVICES),
    ("bench/throughput", THROUGHPUT),
    ("bench/bulk_drain", BULK_DRAIN),
    ("bench/is_open", IS_OPEN),
    ("bench/open_counts", OPEN_COUNTS),
    ("bench/latencies", LATENCIES),
    ("bench/insert_notifications", INSERT_NOTIFICATIONS),
    ("bench/quality", QUALITY),
    ("bench/seed_campaign_devices", SEED_CAMPAIGN_DEVICES),
    ("bench/campaign_throughput", CAMPAIGN_THROUGHPUT),
];

const APP: &str = "bench";
/// How often the bench looks at the queue.
const POLL: Duration = Duration::from_millis(200);
/// The longest the bench waits for the daemons to drain a phase's work.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);
/// The producers' clock.
const TICK: Duration = Duration::from_millis(10);
/// Notifications per INSERT when queueing a backlog.
const CHUNK: i32 = 10_000;
/// The tag of the campaign bench's audience.
const CAMPAIGN_TAG: &str = "bench_campaign";
/// Campaign devices seeded per INSERT (one statement of a million rows
/// would hold every row's index entries in one transaction).
const CAMPAIGN_SEED_CHUNK: u32 = 100_000;
/// The longest a campaign may take to hand over every target.
const CAMPAIGN_LIMIT: Duration = Duration::from_secs(1800);
/// Seconds of alerts sent, and not measured, before the comparison: the
/// daemons' connections and plans are warm by then.
const WARM_UP_SECS: u64 = 2;

pub async fn run(settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    #[cfg(not(feature = "mock"))]
    anyhow::ensure!(
        args.provider != "mock",
        "this build has no mock providers (built without the `mock` feature); use --provider simulator"
    );
    anyhow::ensure!(
        args.faults.is_none() || args.provider == "mock",
        "--faults needs --provider mock: the fault mix is played by the mock servers"
    );
    let url = bench_database_url(&settings.database.url)?;
    db::recreate_database(&url).await?;
    let dir = std::env::temp_dir().join(format!("pushrelay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (mock, app) = providers(&args, &dir).await?;
    let config = dir.join("daemon.toml");
    std::fs::write(&config, daemon_config(&settings, &url, app, &args)?)?;
    let bin = match &args.daemon_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?,
    };
    child::migrate(&bin, &config).await?;
    let options = db::connect_options(&url)?.application_name("pushrelay-bench");
    let conn = PgConnection::connect_with(&options).await?;
    let users = args.users as i32;
    let mut bench = Bench {
        args: &args,
        conn,
        daemons: Vec::new(),
        next: 0,
        users,
    };
    bench.seed().await?;
    if let Some(devices) = args.campaign {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        println!(
            "daemons: {} × {} (config and logs in {})",
            args.processes,
            bin.display(),
            dir.display()
        );
        let load_before = procfs::load_average();
        let run = bench.campaign(devices, &pool, &bin, &config, &dir).await?;
        let load = |l: Option<f64>| l.map_or("n/a".into(), |l| format!("{l:.2}"));
        println!(
            "machine load (1-minute average): {} when the daemons started, {} at the end",
            load(load_before),
            load(procfs::load_average())
        );
        let peak_rss_mb = bench.stop().await?;
        if let Some(mock) = mock {
            mock.stop().await?;
        }
        print_campaign(&args, &run, &peak_rss_mb);
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        return Ok(());
    }
    if args.faults.is_some() {
        let mock = mock.context("--faults runs the mock servers")?;
        return bench.quality(&bin, &config, &dir, mock).await;
    }
    println!(
        "daemons: {} × {} (config and logs in {})",
        args.processes,
        bin.display(),
        dir.display()
    );
    let throughput = bench.throughput(&bin, &config, &dir).await?;
    let latency = bench.latency().await?;
    let alerts = match args.priority_backlog {
        0 => None,
        _ => Some(bench.priority().await?),
    };
    let peak_rss_mb = bench.stop().await?;
    if let Some(mock) = mock {
        mock.stop().await?;
    }
    print_summary(&args, &throughput, &peak_rss_mb);
    println!(
        "{}",
        last_line(&throughput, &latency, &peak_rss_mb, alerts.as_ref())
    );
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}

/// The configured URL naming the database `<name>_bench` instead: same
/// server, same credentials.
fn bench_database_url(configured: &str) -> anyhow::Result<String> {
    let base = db::connect_options(configured)?;
    let name = format!("{}_bench", base.get_database().unwrap_or("pushrelay"));
    let mut url = reqwest::Url::parse(configured)?;
    url.set_path(&name);
    Ok(url.to_string())
}

/// The `[apps.bench]` providers, with the mock servers' process when they
/// are used.
async fn providers(
    args: &BenchArgs,
    dir: &Path,
) -> anyhow::Result<(Option<child::Mock>, serde_json::Value)> {
    if args.provider == "simulator" {
        let simulator = json!({ "provider": "simulator" });
        return Ok((None, json!({ "ios": simulator, "android": simulator })));
    }
    let config = dir.join("mock.toml");
    let faults = match args.faults {
        Some(_) => json!({
            "unavailable_rate": FAULT_UNAVAILABLE,
            "rate_limited_rate": FAULT_RATE_LIMITED,
            "retry_after_secs": FAULT_RETRY_AFTER_SECS,
            "slow_rate": FAULT_SLOW,
            "slow_ms": FAULT_SLOW_MS,
            "reset_rate": args.reset_rate,
            "rules": [{ "token_prefix": "dead", "fault": { "kind": "unregistered" } }],
        }),
        None => json!({
            "slow_rate": 1.0, // every answer takes latency_ms, like the simulator
            "slow_ms": args.latency_ms,
            "unavailable_rate": args.transient_rate,
        }),
    };
    let faults = json!({ "mock": { "faults": faults } });
    std::fs::write(&config, toml::to_string(&faults)?)?;
    let (mock, mut app) = child::start_mock(
        &config,
        &dir.join("mock"),
        &dir.join("mock.log"),
        args.faults.is_some(),
    )
    .await?;
    for platform in ["ios", "android"] {
        anyhow::ensure!(
            app[platform].is_object(),
            "the mock's config snippet has no [apps.demo.{platform}]"
        );
        app[platform]["connections"] = 4.into();
    }
    Ok((Some(mock), app))
}

/// The daemons' config file: only keys that every pushrelay release reads,
/// so that `--daemon-bin` can be an older build; the rest keep the built-in
/// defaults.
fn daemon_config(
    settings: &Settings,
    url: &str,
    app: serde_json::Value,
    args: &BenchArgs,
) -> anyhow::Result<String> {
    let templates = std::path::absolute(&settings.templates.dir)?;
    let mut config = json!({
        "database": { "url": url, "max_connections": settings.database.max_connections },
        "templates": { "dir": templates },
        "telemetry": { "level": "warn", "format": "pretty" },
        "metrics": { "listen": "" },
        "retry": { "urgent": {
            "base_ms": 100,
            "cap_ms": 60_000,
            "min_delay_ms": 100,
            "max_attempts": 8,
            "max_retry_after_secs": 300,
        }},
        "simulator": {
            "latency_ms": args.latency_ms,
            "latency_jitter_ms": args.jitter_ms,
            "transient_error_rate": args.transient_rate,
            "rules": [],
        },
        "apps": { APP: app },
    });
    if args.faults.is_some() {
        config["worker"] = json!({ "send_timeout_ms": FAULT_SEND_TIMEOUT_MS });
    }
    Ok(toml::to_string(&config)?)
}

/// The run in progress: the bench's one database connection and the
/// daemons.
struct Bench<'a> {
    args: &'a BenchArgs,
    conn: PgConnection,
    daemons: Vec<Daemon>,
    /// Number of the next notification inserted (it picks user and data).
    next: i32,
    /// The users notifications are spread over (u1…).
    users: i32,
}

/// What the campaign bench saw.
struct CampaignRun {
    devices: u32,
    reach: db::campaigns::Reach,
    /// The campaign's deliveries accepted, and its devices per second from
    /// its start to the last acceptance.
    delivered: i64,
    secs: f64,
    progress: db::campaigns::Progress,
    /// The alerts without, then during, the campaign.
    alone: Latencies,
    during: Latencies,
    alerts_during: i32,
    /// The largest daemon's peak RSS before the campaign (MiB).
    rss_before_mb: u64,
}

struct Throughput {
    delivered: i64,
    per_sec: f64,
    /// CPU each daemon used in the phase.
    daemon_cpu_us: Vec<u64>,
    /// PostgreSQL's CPU in the phase, when the server runs on this machine.
    db_cpu_us: Option<u64>,
}

impl Throughput {
    fn per_delivery(&self, cpu_us: u64) -> f64 {
        cpu_us as f64 / self.delivered as f64
    }
}

/// Enqueue → provider accepted, over a set of deliveries (ms).
struct Latencies {
    deliveries: i64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Bench<'_> {
    /// Starts `--processes` daemons, each logging to its own file in `dir`;
    /// returns the logs.
    fn start_daemons(
        &mut self,
        bin: &Path,
        config: &Path,
        dir: &Path,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let mut logs = Vec::new();
        for i in 1..=self.args.processes {
            let log = dir.join(format!("daemon-{i}.log"));
            self.daemons.push(Daemon::spawn(bin, config, log.clone())?);
            logs.push(log);
        }
        Ok(logs)
    }

    async fn seed(&mut self) -> anyhow::Result<()> {
        match self.args.faults {
            Some(_) => println!(
                "seeding {} users × 2 devices (1 in {FAULT_DEAD_EVERY} with dead tokens)…",
                self.args.users
            ),
            None if self.args.campaign.is_some() => println!(
                "seeding {} users × 2 devices for the alerts…",
                self.args.users
            ),
            None => println!(
                "seeding {} users × 2 devices and {} notifications…",
                self.args.users, self.args.notifications
            ),
        }
        let dead_every = match self.args.faults {
            Some(_) => FAULT_DEAD_EVERY,
            None => 0,
        };
        sqlx::query(SEED_DEVICES)
            .bind(APP)
            .bind(self.args.users as i32)
            .bind(dead_every)
            .execute(&mut self.conn)
            .await?;
        if let Some(devices) = self.args.campaign {
            println!("seeding {devices} campaign devices (half iOS, half Android, 5 timezones)…");
            let mut from = 0;
            while from < devices {
                let to = (from + CAMPAIGN_SEED_CHUNK).min(devices);
                sqlx::query(SEED_CAMPAIGN_DEVICES)
                    .bind(APP)
                    .bind(from as i32)
                    .bind(to as i32)
                    .execute(&mut self.conn)
                    .await?;
                from = to;
            }
        } else if self.args.faults.is_none() {
            self.insert_backlog(self.args.notifications, Priority::Urgent)
                .await?;
        }
        sqlx::query("ANALYZE").execute(&mut self.conn).await?;
        Ok(())
    }

    /// Phase 1: start the daemons on the seeded backlog and time the drain.
    async fn throughput(
        &mut self,
        bin: &Path,
        config: &Path,
        dir: &Path,
    ) -> anyhow::Result<Throughput> {
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut self.conn)
            .await?;
        let postgres = u32::try_from(backend).ok().and_then(PostgresCpu::find);
        let db_before = postgres.as_ref().and_then(PostgresCpu::sample_us);
        self.start_daemons(bin, config, dir)?;
        self.wait_until_drained("the throughput backlog").await?;
        let daemon_cpu_us = self
            .daemons
            .iter()
            .map(|d| {
                procfs::cpu_us(d.pid).with_context(|| format!("reading daemon {}'s CPU", d.pid))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let db_cpu_us = postgres.and_then(|p| Some(p.sample_us()?.saturating_sub(db_before?)));
        let (delivered, first, last): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as(THROUGHPUT).fetch_one(&mut self.conn).await?;
        let secs = seconds_between(first, last);
        let result = Throughput {
            delivered,
            per_sec: delivered as f64 / secs.max(0.001),
            daemon_cpu_us,
            db_cpu_us,
        };
        println!(
            "throughput: {delivered} of {} deliveries accepted in {secs:.2} s (first fan-out → last acceptance) \
             = {:.0} deliveries/s; CPU per delivery: daemons {:.1} µs, PostgreSQL {}",
            i64::from(self.args.notifications) * 2,
            result.per_sec,
            result.per_delivery(result.daemon_cpu_us.iter().sum()),
            result.db_cpu_us.map_or("n/a (the server is not on this machine)".into(), |us| {
                format!("{:.1} µs", result.per_delivery(us))
            }),
        );
        Ok(result)
    }

    /// Phase 2: a steady producer of urgent notifications.
    async fn latency(&mut self) -> anyhow::Result<Latencies> {
        let since = self.now().await?;
        let (rate, secs) = (self.args.rate, self.args.duration);
        let produced = self.produce(rate, secs, Priority::Urgent).await?;
        self.wait_until_drained("the latency phase").await?;
        let l = latencies(&mut self.conn, since, Priority::Urgent).await?;
        println!(
            "latency: {produced} notifications at {:.0}/s → {} deliveries; enqueue → accepted p50 {:.1} ms, p99 {:.1} ms",
            f64::from(produced) / secs as f64,
            l.deliveries,
            l.p50,
            l.p99
        );
        Ok(l)
    }

    /// Phase 3: urgent alerts while a bulk backlog drains.
    async fn priority(&mut self) -> anyhow::Result<Latencies> {
        let since = self.now().await?;
        let backlog = self.args.priority_backlog;
        self.insert_backlog(backlog, Priority::Bulk).await?;
        let (rate, secs) = (self.args.alert_rate, self.args.alert_duration);
        let alerts = self.produce(rate, secs, Priority::Urgent).await?;
        self.wait_until_drained("the priority phase").await?;
        let urgent = latencies(&mut self.conn, since, Priority::Urgent).await?;
        let (bulk, first, last): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as(BULK_DRAIN)
                .bind(since)
                .fetch_one(&mut self.conn)
                .await?;
        println!(
            "priority: {backlog} bulk notifications → {bulk} deliveries drained at {:.0} deliveries/s, \
             meanwhile {alerts} urgent alerts ({rate}/s for {secs} s) → {} deliveries; \
             alert enqueue → accepted p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            bulk as f64 / seconds_between(first, last),
            urgent.deliveries,
            urgent.p50,
            urgent.p99,
            urgent.max
        );
        Ok(urgent)
    }

    /// `--campaign`: the alerts alone, then a campaign to every seeded
    /// campaign device with the alerts going on until it has handed over
    /// every target.
    async fn campaign(
        &mut self,
        devices: u32,
        pool: &sqlx::PgPool,
        bin: &Path,
        config: &Path,
        dir: &Path,
    ) -> anyhow::Result<CampaignRun> {
        self.start_daemons(bin, config, dir)?;
        let (rate, secs) = (self.args.alert_rate, self.args.alert_duration);
        self.produce(rate, WARM_UP_SECS, Priority::Urgent).await?;
        self.wait_until_drained("the warm-up").await?;
        let since = self.now().await?;
        let produced = self.produce(rate, secs, Priority::Urgent).await?;
        self.wait_until_drained("the alerts alone").await?;
        let alone = latencies(&mut self.conn, since, Priority::Urgent).await?;
        println!(
            "alerts alone: {produced} urgent alerts ({rate}/s for {secs} s) → {} deliveries; \
             enqueue → accepted p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            alone.deliveries, alone.p50, alone.p99, alone.max
        );
        let rss_before_mb = self.peak_rss_mb()?.into_iter().max().unwrap_or(0);

        let since = self.now().await?;
        let ctx = db::campaigns::Context {
            routes: vec![format!("{APP}/ios"), format!("{APP}/android")],
            ..Default::default()
        };
        let new = db::campaigns::NewCampaign {
            app: APP.into(),
            name: format!("bench: {devices} devices"),
            content: db::campaigns::Content {
                title: Some("Autumn offer".into()),
                body: Some("0 % fees on transfers abroad this week".into()),
                data: json!({ "deeplink": "bank://offers/autumn" }),
                ..Default::default()
            },
            segment: db::campaigns::Segment {
                tags_any: Some(vec![CAMPAIGN_TAG.into()]),
                ..Default::default()
            },
            created_by: Some("pushrelay bench".into()),
            ..Default::default()
        };
        let created = Instant::now();
        let (campaign, reach) =
            db::campaigns::create(pool, &ctx, &[APP.into()], &new, Utc::now()).await?;
        println!(
            "campaign {} created in {:.1} s: {} devices of {} users, unthrottled, priority {}; \
             urgent alerts at {rate}/s until every target is handed over…",
            campaign.id,
            created.elapsed().as_secs_f64(),
            reach.devices,
            reach.users,
            campaign.priority
        );
        let alerts_during = self.produce_during(rate, pool, campaign.id).await?;
        self.wait_until_drained("the campaign").await?;
        let during = latencies(&mut self.conn, since, Priority::Urgent).await?;
        let (delivered, started, last): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as(CAMPAIGN_THROUGHPUT)
                .bind(campaign.id)
                .fetch_one(&mut self.conn)
                .await?;
        let progress = db::campaigns::progress(pool, campaign.id, Utc::now()).await?;
        Ok(CampaignRun {
            devices,
            reach,
            delivered,
            secs: seconds_between(started, last),
            progress,
            alone,
            during,
            alerts_during,
            rss_before_mb,
        })
    }

    /// Inserts urgent alerts at `rate` per second until the campaign is no
    /// longer scheduled or running (looked at once a second); returns how
    /// many.
    async fn produce_during(
        &mut self,
        rate: u32,
        pool: &sqlx::PgPool,
        campaign: uuid::Uuid,
    ) -> anyhow::Result<i32> {
        use db::campaigns::CampaignState;
        let first = self.next;
        let started = Instant::now();
        let mut looked = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let due = first + (f64::from(rate) * started.elapsed().as_secs_f64()) as i32;
            if due > self.next {
                self.insert_up_to(due, Priority::Urgent).await?;
            }
            if looked.elapsed() < Duration::from_secs(1) {
                continue;
            }
            looked = Instant::now();
            for daemon in &mut self.daemons {
                daemon.check_running()?;
            }
            let c = db::campaigns::get(pool, campaign, None)
                .await?
                .context("the bench's campaign is gone")?;
            if !matches!(c.state, CampaignState::Scheduled | CampaignState::Running) {
                anyhow::ensure!(
                    c.state == CampaignState::Completed,
                    "the bench's campaign ended {}",
                    c.state
                );
                return Ok(self.next - first);
            }
            anyhow::ensure!(
                started.elapsed() < CAMPAIGN_LIMIT,
                "the campaign did not hand over every target within {} s",
                CAMPAIGN_LIMIT.as_secs()
            );
        }
    }

    /// Each daemon's peak RSS so far (MiB).
    fn peak_rss_mb(&self) -> anyhow::Result<Vec<u64>> {
        self.daemons
            .iter()
            .map(|d| {
                procfs::peak_rss_mb(d.pid)
                    .with_context(|| format!("reading daemon {}'s memory", d.pid))
            })
            .collect()
    }

    /// `--faults`: notifications at a steady rate through the fault mix,
    /// then how well they were delivered.
    async fn quality(
        mut self,
        bin: &Path,
        config: &Path,
        dir: &Path,
        mock: child::Mock,
    ) -> anyhow::Result<()> {
        let logs = self.start_daemons(bin, config, dir)?;
        let since = self.now().await?;
        let (rate, secs) = (self.args.rate, self.args.duration);
        println!(
            "fault mix `mobile`: {} % 503, {} % 429 (Retry-After {FAULT_RETRY_AFTER_SECS} s), \
             {} % answered after the {FAULT_SEND_TIMEOUT_MS} ms send timeout, {} % connection resets, \
             1 in {FAULT_DEAD_EVERY} users with dead tokens; {rate} notifications/s for {secs} s, TTL {} s",
            FAULT_UNAVAILABLE * 100.0,
            FAULT_RATE_LIMITED * 100.0,
            FAULT_SLOW * 100.0,
            self.args.reset_rate * 100.0,
            self.args.ttl
        );
        let produced = self.produce(rate, secs, Priority::Urgent).await?;
        self.wait_until_drained("the fault phase").await?;
        let q: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(QUALITY)
            .bind(since)
            .fetch_one(&mut self.conn)
            .await?;
        let (deliverable, in_time, failed, expired, late_sends, attempts, tries) = q;
        let l = latencies(&mut self.conn, since, Priority::Urgent).await?;
        self.stop().await?;
        let stats = mock.stop().await?;
        let duplicates = stats["duplicates"].as_u64().unwrap_or(0);
        let breaker_opened = logs
            .iter()
            .map(|log| {
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("circuit breaker open"))
                    .count()
            })
            .sum::<usize>();
        let share = 100.0 * in_time as f64 / deliverable.max(1) as f64;
        let per = |n: i64| n as f64 / deliverable.max(1) as f64;
        println!(
            "{produced} notifications → {deliverable} deliverable deliveries: {in_time} accepted before expiry ({share:.2} %), \
             {failed} failed, {expired} expired; {late_sends} sends after expiry; \
             {:.3} attempts and {:.3} tries per delivery; enqueue → accepted p50 {:.1} ms, p99 {:.1} ms; \
             the mock accepted {duplicates} duplicates; circuit breaker opened {breaker_opened} times",
            per(attempts),
            per(tries),
            l.p50,
            l.p99,
        );
        println!(
            "delivered_pct={share:.2} sends_after_expiry={late_sends} attempts_per_delivery={:.3} \
             tries_per_delivery={:.3} p50_ms={:.1} p99_ms={:.1} duplicates={duplicates} breaker_opened={breaker_opened}",
            per(attempts),
            per(tries),
            l.p50,
            l.p99
        );
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        Ok(())
    }

    /// Reads each daemon's peak RSS (MiB), then stops them with SIGTERM.
    async fn stop(self) -> anyhow::Result<Vec<u64>> {
        let peak_rss_mb = self.peak_rss_mb()?;
        for daemon in self.daemons {
            daemon.stop().await?;
        }
        Ok(peak_rss_mb)
    }

    async fn now(&mut self) -> Result<DateTime<Utc>, sqlx::Error> {
        sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&mut self.conn)
            .await
    }

    /// Queues `count` notifications at once, in chunks.
    async fn insert_backlog(&mut self, count: u32, priority: Priority) -> anyhow::Result<()> {
        let end = self.next + i32::try_from(count)?;
        while self.next < end {
            self.insert_up_to((self.next + CHUNK).min(end), priority)
                .await?;
        }
        Ok(())
    }

    /// Inserts notifications at `rate` per second for `secs` seconds;
    /// returns how many.
    async fn produce(&mut self, rate: u32, secs: u64, priority: Priority) -> anyhow::Result<i32> {
        let first = self.next;
        let duration = Duration::from_secs(secs);
        let started = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let elapsed = started.elapsed().min(duration);
            // On schedule, whatever the tick: each insert catches up.
            let due = first + (f64::from(rate) * elapsed.as_secs_f64()) as i32;
            if due > self.next {
                self.insert_up_to(due, priority).await?;
            }
            if elapsed == duration {
                return Ok(self.next - first);
            }
        }
    }

    /// Inserts notifications number `self.next..to`.
    async fn insert_up_to(&mut self, to: i32, priority: Priority) -> Result<(), sqlx::Error> {
        let users = self.users;
        let ttl = match self.args.faults {
            Some(_) => self.args.ttl as i32,
            None => 3600,
        };
        insert_notifications(&mut self.conn, self.next, to, users, priority, ttl).await?;
        self.next = to;
        Ok(())
    }

    /// Waits until no notification awaits fan-out and no delivery is pending
    /// or being sent; fails if a daemon exits or it takes over 10 minutes.
    async fn wait_until_drained(&mut self, what: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            for daemon in &mut self.daemons {
                daemon.check_running()?;
            }
            // One statement, one snapshot: fan-out turns a notification into
            // its deliveries atomically.
            let open: bool = sqlx::query_scalar(IS_OPEN)
                .fetch_one(&mut self.conn)
                .await?;
            if !open {
                return Ok(());
            }
            if started.elapsed() >= DRAIN_LIMIT {
                let (notifications, deliveries): (i64, i64) = sqlx::query_as(OPEN_COUNTS)
                    .fetch_one(&mut self.conn)
                    .await?;
                anyhow::bail!(
                    "{what} did not drain within {} s: {notifications} notification(s) not fanned out \
                     and {deliveries} deliveries pending or sending",
                    DRAIN_LIMIT.as_secs()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Seconds from `first` to `last`; NaN when either is missing.
fn seconds_between(first: Option<DateTime<Utc>>, last: Option<DateTime<Utc>>) -> f64 {
    match (first, last) {
        (Some(first), Some(last)) => (last - first).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => f64::NAN,
    }
}

/// Latencies of the deliveries of the notifications of one priority
/// created since `since`.
async fn latencies(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    priority: Priority,
) -> Result<Latencies, sqlx::Error> {
    let (deliveries, p50, p99, max): (i64, Option<f64>, Option<f64>, Option<f64>) =
        sqlx::query_as(LATENCIES)
            .bind(since)
            .bind(priority.as_str())
            .fetch_one(conn)
            .await?;
    let ms = |v: Option<f64>| v.unwrap_or(f64::NAN);
    Ok(Latencies {
        deliveries,
        p50: ms(p50),
        p99: ms(p99),
        max: ms(max),
    })
}

/// The machine-readable summary.
fn last_line(
    throughput: &Throughput,
    latency: &Latencies,
    peak_rss_mb: &[u64],
    alerts: Option<&Latencies>,
) -> String {
    let per_delivery = |us: u64| format!("{:.1}", throughput.per_delivery(us));
    let mut line = format!(
        "deliveries_per_sec={:.0} p50_ms={:.1} p99_ms={:.1} peak_rss_mb={} daemon_cpu_us={} db_cpu_us={}",
        throughput.per_sec,
        latency.p50,
        latency.p99,
        peak_rss_mb.iter().max().unwrap_or(&0),
        per_delivery(throughput.daemon_cpu_us.iter().sum()),
        throughput.db_cpu_us.map_or("na".into(), per_delivery),
    );
    if let Some(alerts) = alerts {
        line.push_str(&format!(" alert_p99_ms={:.1}", alerts.p99));
    }
    line
}

/// The campaign bench's report, and its machine-readable last line.
fn print_campaign(args: &BenchArgs, run: &CampaignRun, peak_rss_mb: &[u64]) {
    let per_sec = run.delivered as f64 / run.secs.max(0.001);
    let t = &run.progress.total;
    println!(
        "campaign: {} devices seeded, {} reached; {} accepted in {:.1} s (campaign start → last acceptance) \
         = {per_sec:.0} devices/s; failed {}, token dead {}, expired {}, still queued {}",
        run.devices, run.reach.devices, run.delivered, run.secs, t.failed, t.token_dead, t.expired, t.queued
    );
    println!(
        "alerts during the campaign: {} urgent alerts ({}/s) → {} deliveries; enqueue → accepted \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (alone: p50 {:.1} ms, p99 {:.1} ms)",
        run.alerts_during,
        args.alert_rate,
        run.during.deliveries,
        run.during.p50,
        run.during.p99,
        run.during.max,
        run.alone.p50,
        run.alone.p99
    );
    match args.provider.as_str() {
        "mock" => println!(
            "providers: the daemons' real APNs + FCM clients (4 HTTP/2 connections each) → mock servers \
             in their own process, {} ms per answer",
            args.latency_ms
        ),
        _ => println!(
            "providers: the daemons' in-process simulator, {}–{} ms per answer",
            args.latency_ms,
            args.latency_ms + args.jitter_ms
        ),
    }
    let peak = peak_rss_mb.iter().max().copied().unwrap_or(0);
    println!(
        "daemons: peak RSS {peak} MB (the largest; {} MB before the campaign)",
        run.rss_before_mb
    );
    println!(
        "campaign_devices={} campaign_devices_per_sec={per_sec:.0} peak_rss_mb={peak} \
         alert_p50_ms={:.1} alert_p99_ms={:.1} alone_p50_ms={:.1} alone_p99_ms={:.1}",
        run.devices, run.during.p50, run.during.p99, run.alone.p50, run.alone.p99
    );
}

/// The providers and the daemons' memory, per daemon when there are several.
fn print_summary(args: &BenchArgs, throughput: &Throughput, peak_rss_mb: &[u64]) {
    match args.provider.as_str() {
        "mock" => println!(
            "providers: the daemons' real APNs + FCM clients (4 HTTP/2 connections each) → mock servers \
             in their own process, {} ms per answer",
            args.latency_ms
        ),
        _ => println!(
            "providers: the daemons' in-process simulator, {}–{} ms per answer",
            args.latency_ms,
            args.latency_ms + args.jitter_ms
        ),
    }
    println!(
        "daemons: peak RSS {} MB (the largest)",
        peak_rss_mb.iter().max().unwrap_or(&0)
    );
    if peak_rss_mb.len() > 1 {
        for (i, (cpu_us, rss)) in throughput.daemon_cpu_us.iter().zip(peak_rss_mb).enumerate() {
            println!(
                "daemon {}: {:.2} s CPU in the throughput phase, peak RSS {rss} MB",
                i + 1,
                *cpu_us as f64 / 1e6
            );
        }
    }
}

async fn insert_notifications(
    conn: &mut PgConnection,
    from: i32,
    to: i32,
    users: i32,
    priority: Priority,
    ttl: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_NOTIFICATIONS)
        .bind(APP)
        .bind(from)
        .bind(to)
        .bind(users)
        .bind(priority.as_str())
        .bind(ttl)
        .execute(conn)
        .await?;
    Ok(())
}

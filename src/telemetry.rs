//! Logs and metrics, set up once per process. `RUST_LOG` overrides the
//! configured level; `json` format is for log shippers, `pretty` for
//! terminals.
//!
//! Metrics: one Prometheus recorder per process ([`prometheus`]), rendered
//! by the API's `GET /metrics` and, when `metrics.listen` is set, on that
//! address too. Each scrape first refreshes the gauges only the database
//! knows (the backlog, [`scrape`]), so every process reports the shared
//! queue as it is at that moment; aggregate them with `max`, not `sum`.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::{MetricsSettings, TelemetrySettings};
use crate::store;

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve metrics on {addr}: {message}; change metrics.listen or set it to \"\" to disable"
)]
pub struct MetricsError {
    addr: String,
    message: String,
}

/// Latencies of one request to a provider or to the API: milliseconds to
/// the send timeout.
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Enqueue → accepted: tens of milliseconds when the queue is empty, up to
/// hours for a throttled campaign or retries across a provider outage.
const END_TO_END_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    14400.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// The pool a `metrics.listen` scrape refreshes the queue gauges from.
static SCRAPE_POOL: OnceLock<PgPool> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use; later calls
/// (tests, the API and `run` each ask) return the same one. Histograms get
/// buckets, not the exporter's default summaries, so they can be
/// aggregated across processes.
pub fn prometheus() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(REQUEST_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("pushrelay_enqueue_to_accepted_seconds".into()),
                    END_TO_END_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // Only an embedding program (or a test) that installed its own
            // recorder gets here: ours then renders nothing.
            tracing::warn!("a metrics recorder was already installed: /metrics will be empty");
        }
        // Without a scrape, histogram samples would pile up between two
        // renders: fold them into their buckets regularly.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            })
            .expect("spawn the metrics upkeep thread");
        handle
    })
}

/// Installs the recorder and, when `metrics.listen` is set, serves
/// `/metrics` there too (for a scraper that must not reach the API's
/// address). Needs a tokio runtime.
pub fn init_metrics(settings: &MetricsSettings) -> Result<(), MetricsError> {
    prometheus();
    if settings.listen.is_empty() {
        return Ok(());
    }
    let err = |message: String| MetricsError {
        addr: settings.listen.clone(),
        message,
    };
    let addr: std::net::SocketAddr = settings.listen.parse().map_err(|e| err(format!("{e}")))?;
    // Bind here so a taken port is reported at start-up, not in a
    // background task.
    let listener = std::net::TcpListener::bind(addr).map_err(|e| err(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| err(e.to_string()))?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| err(e.to_string()))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            let body = match SCRAPE_POOL.get() {
                Some(pool) => scrape(pool).await,
                None => prometheus().render(),
            };
            ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], body)
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    Ok(())
}

/// The pool `metrics.listen` refreshes the queue gauges from (the API's
/// `/metrics` uses its own); the first call wins.
pub fn set_scrape_pool(pool: PgPool) {
    let _ = SCRAPE_POOL.set(pool);
}

/// Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label sets of the queue gauges set by the previous scrape: one that has
/// nothing due any more is set to 0 rather than left at its last value.
#[derive(Default)]
struct Reported {
    deliveries: HashSet<(String, String)>,
    notifications: HashSet<String>,
}

static REPORTED: Mutex<Option<Reported>> = Mutex::new(None);

/// Refreshes the gauges only the database knows, then renders every
/// metric. If the database does not answer, the rest is still served (with
/// the gauges as last read) and `pushrelay_metrics_scrape_errors_total`
/// counts it: a scrape must not fail because of the thing it watches.
pub async fn scrape(pool: &PgPool) -> String {
    // One scrape at a time: each renders the gauges it just read, not a
    // mix with a concurrent scrape's (of another pool, in tests).
    static SCRAPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = SCRAPING.lock().await;
    let handle = prometheus();
    let idle = pool.num_idle() as f64;
    metrics::gauge!("pushrelay_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("pushrelay_db_pool_connections", "state" => "in_use")
        .set((pool.size() as f64 - idle).max(0.0));
    match tokio::time::timeout(Duration::from_secs(2), store::metrics::queue(pool)).await {
        Ok(Ok(queue)) => report_queue(&queue),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not read the queue gauges for /metrics");
            metrics::counter!("pushrelay_metrics_scrape_errors_total").increment(1);
        }
        Err(_) => {
            tracing::warn!("reading the queue gauges for /metrics took over 2 s; skipped");
            metrics::counter!("pushrelay_metrics_scrape_errors_total").increment(1);
        }
    }
    handle.render()
}

fn report_queue(queue: &store::metrics::Queue) {
    let mut now = Reported::default();
    for ((app, platform), due) in &queue.deliveries {
        let labels = [("app", app.clone()), ("platform", platform.clone())];
        metrics::gauge!("pushrelay_deliveries_due", &labels).set(due.count as f64);
        metrics::gauge!("pushrelay_oldest_due_delivery_age_seconds", &labels)
            .set(due.oldest_age_secs);
        now.deliveries.insert((app.clone(), platform.clone()));
    }
    for (priority, due) in &queue.notifications {
        let labels = [("priority", priority.clone())];
        metrics::gauge!("pushrelay_notifications_due", &labels).set(due.count as f64);
        metrics::gauge!("pushrelay_oldest_due_notification_age_seconds", &labels)
            .set(due.oldest_age_secs);
        now.notifications.insert(priority.clone());
    }
    for state in ["scheduled", "running", "paused"] {
        let n = queue
            .campaigns
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("pushrelay_campaigns", "state" => state).set(n as f64);
    }
    let mut reported = REPORTED.lock().unwrap();
    let before = reported.take().unwrap_or_default();
    for (app, platform) in before.deliveries.difference(&now.deliveries) {
        let labels = [("app", app.clone()), ("platform", platform.clone())];
        metrics::gauge!("pushrelay_deliveries_due", &labels).set(0.0);
        metrics::gauge!("pushrelay_oldest_due_delivery_age_seconds", &labels).set(0.0);
    }
    for priority in before.notifications.difference(&now.notifications) {
        let labels = [("priority", priority.clone())];
        metrics::gauge!("pushrelay_notifications_due", &labels).set(0.0);
        metrics::gauge!("pushrelay_oldest_due_notification_age_seconds", &labels).set(0.0);
    }
    *reported = Some(now);
}

pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // Logs go to stderr so command output (ids, reports) stays pipeable.
    let result = if settings.format == "json" {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
            .try_init()
    };
    // A second init (tests, demo inside another command) keeps the first.
    let _ = result;
}

//! Logs and metrics, set up once per process. `RUST_LOG` overrides the
//! configured level; `json` format is for log shippers, `pretty` for
//! terminals. Metrics are served in Prometheus format by `pushrelay run`.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::{MetricsSettings, TelemetrySettings};

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve metrics on {addr}: {message}; change metrics.listen or set it to \"\" to disable"
)]
pub struct MetricsError {
    addr: String,
    message: String,
}

/// Starts the Prometheus endpoint, if configured. Needs a tokio runtime.
pub fn init_metrics(settings: &MetricsSettings) -> Result<(), MetricsError> {
    if settings.listen.is_empty() {
        return Ok(());
    }
    let err = |message: String| MetricsError {
        addr: settings.listen.clone(),
        message,
    };
    let addr: std::net::SocketAddr = settings.listen.parse().map_err(|e| err(format!("{e}")))?;
    // Bind first so a taken port is reported here, not in a background task.
    std::net::TcpListener::bind(addr).map_err(|e| err(e.to_string()))?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| err(e.to_string()))?;
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    Ok(())
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

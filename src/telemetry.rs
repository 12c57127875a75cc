//! Logging, set up once per process. `RUST_LOG` overrides the configured
//! level; `json` format is for log shippers, `pretty` for terminals.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::TelemetrySettings;

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

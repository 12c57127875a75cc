//! `pushrelay run`: the daemon (worker and HTTP API), until SIGTERM/SIGINT.

use tokio_util::sync::CancellationToken;

use crate::api;
use crate::app::App;
use crate::config::Settings;
use crate::telemetry;

pub(super) async fn run(settings: Settings) -> anyhow::Result<()> {
    telemetry::init(&settings.telemetry);
    telemetry::init_metrics(&settings.metrics)?;
    // Bound before anything starts, so a taken port is reported at once.
    let listener = api::bind(&settings).await?;
    let app = App::build(settings).await?;
    // The queue gauges of /metrics read the database, wherever it is scraped.
    telemetry::set_scrape_pool(app.pool.clone());
    let (stop, hard) = (CancellationToken::new(), CancellationToken::new());
    tokio::spawn(watch_signals(stop.clone(), hard.clone()));
    // The API stops taking requests on the first signal, like the worker
    // stops claiming; requests being handled finish.
    let api = listener.map(|l| app.serve_api(l, stop.clone()));
    app.run(stop, hard).await?;
    if let Some(api) = api {
        api.await??;
    }
    Ok(())
}

/// First SIGTERM/SIGINT: stop claiming and drain. Second: stop now.
async fn watch_signals(stop: CancellationToken, hard: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    for token in [stop, hard] {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested");
        token.cancel();
    }
}

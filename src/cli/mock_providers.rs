//! `pushrelay mock-providers`: the mock APNs and FCM servers on a fixed
//! port until Ctrl-C, with the credentials they accept written to files.

use std::path::PathBuf;

use anyhow::Context;

use crate::config::Settings;

pub(super) async fn run(
    settings: &Settings,
    listen: Option<std::net::SocketAddr>,
    dir: Option<PathBuf>,
    record: bool,
    count_duplicates: bool,
) -> anyhow::Result<()> {
    let addr =
        match listen {
            Some(a) => a,
            None => settings.mock.listen.parse().with_context(|| {
                format!("mock.listen {:?} is not host:port", settings.mock.listen)
            })?,
        };
    let config = crate::mock::MockConfig {
        faults: settings.mock.faults.clone(),
        record,
        count_duplicates,
        ..Default::default()
    };
    let mock = crate::mock::MockProviders::start_on(addr, config).await?;
    let dir = dir.unwrap_or_else(|| settings.mock.credentials_dir.clone());
    let routes = crate::mock_setup::write_credentials(&mock, &dir)
        .with_context(|| format!("writing the mock's credentials to {}", dir.display()))?;
    println!(
        "mock APNs (production) and FCM listening on {}, mock APNs sandbox on {} (HTTP/2 over TLS)",
        mock.base_url(),
        mock.sandbox_url()
    );
    println!(
        "credentials written to {}; to send to the mock, use:\n",
        dir.display()
    );
    println!("{}", routes.config_snippet("demo"));
    println!("Ctrl-C stops the mock.");
    tokio::signal::ctrl_c().await?;
    println!("{}", serde_json::to_string_pretty(&mock.stats())?);
    mock.shutdown();
    Ok(())
}

//! The command line: one verb per job, each a thin call into the library,
//! in a file of its own.

mod bench;
mod campaigns;
mod check_config;
mod demo;
mod devices;
mod keys;
#[cfg(feature = "mock")]
mod mock_providers;
mod run;
mod send;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uuid::Uuid;

pub use self::bench::{BenchArgs, STATEMENTS as BENCH_STATEMENTS};
pub use self::campaigns::CampaignsCommand;
pub use self::devices::DevicesCommand;
pub use self::keys::KeysCommand;
pub use self::send::SendArgs;
pub use self::status::{render_holds, render_table};
use crate::config::Settings;
use crate::{store, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "pushrelay",
    version,
    about = "Push notification delivery daemon: PostgreSQL outbox → APNs / FCM, with retries and receipts"
)]
pub struct Cli {
    /// Configuration file (default: ./config.toml when present). Every key
    /// can also be set with PUSHRELAY__SECTION__KEY variables.
    #[arg(long, short, global = true, env = "PUSHRELAY_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the pushrelay schema (safe to run repeatedly).
    Migrate,
    /// Run the daemon (worker and HTTP API) until SIGTERM/SIGINT (a second
    /// signal stops at once).
    Run,
    /// Enqueue a notification; prints its id.
    Send(SendArgs),
    /// Show what happened to a notification, device by device, and the
    /// provider pauses in force (without an id: only the pauses).
    Status {
        /// The notification id printed by `send` (or from the outbox row).
        id: Option<Uuid>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register, list and remove devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Create, list and revoke the HTTP API's keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Marketing campaigns: create, list, show (live progress), preview an
    /// audience, pause, resume, cancel.
    #[command(subcommand)]
    Campaigns(CampaignsCommand),
    /// Validate the configuration and templates and explain any problem.
    CheckConfig,
    /// Run a self-contained demo against the configured database, sending
    /// through the real APNs and FCM clients to in-process mock servers.
    Demo {
        /// Use the in-process simulator instead of the mock servers.
        #[arg(long)]
        simulator: bool,
    },
    /// Measure end-to-end throughput, latency and CPU per delivery.
    Bench(BenchArgs),
    /// Run mock APNs and FCM servers (HTTP/2 over TLS) until Ctrl-C, and
    /// write the credentials they accept, with a config snippet to use them.
    #[cfg(feature = "mock")]
    MockProviders {
        /// Address to listen on (default: mock.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Where to write the CA, keys and service account (default: mock.credentials_dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Do not keep what the mock accepted, nor count duplicates (for
        /// load tests: flat memory, no work per request beyond answering).
        #[arg(long)]
        no_record: bool,
        /// Count messages accepted twice for one device even with
        /// --no-record (the fault-mix bench reports them).
        #[arg(long)]
        count_duplicates: bool,
    },
}

/// Runs a command and maps the result to an exit code, printing errors in
/// full (with their causes) on stderr.
pub async fn main(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the
/// message already quotes (many errors embed their source).
fn describe_error(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn load_settings(path: Option<&std::path::Path>) -> anyhow::Result<Settings> {
    let settings = Settings::load(path)?;
    settings.validate()?;
    Ok(settings)
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::CheckConfig => check_config::run(load_settings(config)?).await,
        Command::Migrate => {
            let settings = load_settings(config)?;
            telemetry::init(&settings.telemetry);
            let pool = store::connect(&settings.database).await?;
            store::migrate(&pool).await?;
            println!("schema up to date");
            Ok(())
        }
        Command::Run => run::run(load_settings(config)?).await,
        Command::Send(args) => {
            let settings = load_settings(config)?;
            let pool = store::connect(&settings.database).await?;
            println!("{}", send::send(&settings, &pool, args).await?);
            Ok(())
        }
        Command::Status { id, json } => {
            let settings = load_settings(config)?;
            let pool = store::connect(&settings.database).await?;
            status::run(&pool, id, json).await
        }
        Command::Devices(cmd) => {
            let settings = load_settings(config)?;
            let pool = store::connect(&settings.database).await?;
            devices::devices_command(&settings, &pool, cmd).await
        }
        Command::Keys(cmd) => {
            let settings = load_settings(config)?;
            let pool = store::connect(&settings.database).await?;
            keys::keys_command(&settings, &pool, cmd).await
        }
        Command::Campaigns(cmd) => {
            let settings = load_settings(config)?;
            let pool = store::connect(&settings.database).await?;
            campaigns::campaigns_command(&settings, &pool, cmd).await
        }
        Command::Demo { simulator } => demo::run(load_settings(config)?, simulator).await,
        Command::Bench(args) => bench::run(Settings::load(config)?, args).await,
        #[cfg(feature = "mock")]
        Command::MockProviders {
            listen,
            dir,
            no_record,
            count_duplicates,
        } => {
            let settings = Settings::load(config)?;
            telemetry::init(&settings.telemetry);
            mock_providers::run(
                &settings,
                listen,
                dir,
                !no_record,
                count_duplicates || !no_record,
            )
            .await
        }
    }
}

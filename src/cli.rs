//! The command line: one verb per job, each a thin call into the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Settings;
use crate::daemon::Daemon;
use crate::devices::{self, Environment, NewDevice, Platform};
use crate::outbox::{self, NewNotification};
use crate::providers::Providers;
use crate::retry::Priority;
use crate::templates::Templates;
use crate::{db, status, telemetry};

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
    /// Run the daemon until SIGTERM/SIGINT (a second signal stops at once).
    Run,
    /// Enqueue a notification; prints its id.
    Send(SendArgs),
    /// Show what happened to a notification, device by device.
    Status {
        /// The notification id printed by `send` (or from the outbox row).
        id: Uuid,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register, list and remove devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Validate the configuration and templates and explain any problem.
    CheckConfig,
    /// Run a self-contained demo against the configured database, sending
    /// through the real APNs and FCM clients to in-process mock servers.
    Demo {
        /// Use the in-process simulator instead of the mock servers.
        #[arg(long)]
        simulator: bool,
    },
    /// Measure end-to-end throughput and latency.
    Bench(crate::bench::BenchArgs),
    /// Run mock APNs and FCM servers (HTTP/2 over TLS) until Ctrl-C, and
    /// write the credentials they accept, with a config snippet to use them.
    MockProviders {
        /// Address to listen on (default: mock.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Where to write the CA, keys and service account (default: mock.credentials_dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The app, as named in config.toml.
    #[arg(long)]
    pub app: String,
    /// Send to every active device of this user.
    #[arg(long, conflicts_with = "device", required_unless_present = "device")]
    pub user: Option<String>,
    /// Send to these device ids (repeatable).
    #[arg(long)]
    pub device: Vec<i64>,
    /// Template name (templates/<name>/<locale>.toml).
    #[arg(long, required_unless_present = "body")]
    pub template: Option<String>,
    /// Inline title (instead of a template).
    #[arg(long, conflicts_with = "template")]
    pub title: Option<String>,
    /// Inline body (instead of a template).
    #[arg(long, conflicts_with = "template")]
    pub body: Option<String>,
    /// Template variables, or the custom payload of an inline message: a JSON object.
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// urgent (transactional) or bulk (marketing).
    #[arg(long, default_value = "urgent", value_parser = ["urgent", "bulk"])]
    pub priority: String,
    /// Seconds after send-at during which the message is still worth sending.
    #[arg(long)]
    pub ttl: Option<i32>,
    /// Devices that were offline get only the latest message with this key.
    #[arg(long)]
    pub collapse_key: Option<String>,
    /// Schedule for later (RFC 3339, e.g. 2026-12-01T09:00:00Z).
    #[arg(long)]
    pub send_at: Option<DateTime<Utc>>,
    /// A second send with the same key for the app is ignored.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Register (or re-register) a device token; prints the device id.
    Add {
        #[arg(long)]
        app: String,
        #[arg(long)]
        user: String,
        #[arg(long, value_parser = ["ios", "android"])]
        platform: String,
        #[arg(long)]
        token: String,
        /// APNs gateway the token belongs to.
        #[arg(long, default_value = "production", value_parser = ["production", "sandbox"])]
        environment: String,
        #[arg(long, default_value = "en")]
        locale: String,
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
    /// List devices (tokens masked).
    List {
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Unregister a device (kept, invalidated, so its history stays).
    Remove { id: i64 },
}

/// Runs a command and maps the result to an exit code, printing errors in
/// full (with their causes) on stderr.
pub async fn main(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => code,
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

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::CheckConfig => {
            let settings = load_settings(config)?;
            let templates = Templates::load(&settings.templates.dir)?;
            // Reads every key and certificate the providers name.
            Providers::from_settings(&settings)?;
            println!(
                "configuration OK: {} app(s) [{}], {} template variant(s) in {}, database {}",
                settings.apps.len(),
                settings.apps.keys().cloned().collect::<Vec<_>>().join(", "),
                templates.len(),
                settings.templates.dir.display(),
                db::describe(&db::connect_options(&settings.database.url)?),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let settings = load_settings(config)?;
            telemetry::init(&settings.telemetry);
            let pool = db::connect(&settings.database).await?;
            db::migrate(&pool).await?;
            println!("schema up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            let settings = Arc::new(load_settings(config)?);
            telemetry::init(&settings.telemetry);
            let templates = Arc::new(Templates::load(&settings.templates.dir)?);
            let pool = db::connect(&settings.database).await?;
            db::check_schema(&pool).await?;
            telemetry::init_metrics(&settings.metrics)?;
            let providers = Providers::from_settings(&settings)?;
            let (stop, hard) = (CancellationToken::new(), CancellationToken::new());
            tokio::spawn(watch_signals(stop.clone(), hard.clone()));
            Daemon::new(pool, settings, providers, templates)
                .run(stop, hard)
                .await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Send(args) => {
            let settings = load_settings(config)?;
            let pool = db::connect(&settings.database).await?;
            let id = send(&settings, &pool, args).await?;
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { id, json } => {
            let settings = load_settings(config)?;
            let pool = db::connect(&settings.database).await?;
            let report = status::load(&pool, id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", status::render_table(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Devices(cmd) => {
            let settings = load_settings(config)?;
            let pool = db::connect(&settings.database).await?;
            devices_command(&settings, &pool, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { simulator } => {
            let settings = Settings::load(config)?;
            settings.validate()?;
            crate::demo::run(settings, simulator).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::MockProviders { listen, dir } => {
            let settings = Settings::load(config)?;
            telemetry::init(&settings.telemetry);
            mock_providers(&settings, listen, dir).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            let settings = Settings::load(config)?;
            crate::bench::run(settings, args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn mock_providers(
    settings: &Settings,
    listen: Option<std::net::SocketAddr>,
    dir: Option<PathBuf>,
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
        ..Default::default()
    };
    let mock = crate::mock::MockProviders::start_on(addr, config).await?;
    let dir = dir.unwrap_or_else(|| settings.mock.credentials_dir.clone());
    let routes = crate::mock_setup::write_credentials(&mock, &dir)
        .with_context(|| format!("writing the mock's credentials to {}", dir.display()))?;
    println!(
        "mock APNs and FCM listening on {} (HTTP/2 over TLS)",
        mock.base_url()
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

fn known_app(settings: &Settings, app: &str) -> anyhow::Result<()> {
    if settings.apps.contains_key(app) {
        return Ok(());
    }
    Err(outbox::OutboxError::UnknownApp(
        app.to_owned(),
        settings.apps.keys().cloned().collect::<Vec<_>>().join(", "),
    )
    .into())
}

async fn send(settings: &Settings, pool: &sqlx::PgPool, args: SendArgs) -> anyhow::Result<Uuid> {
    known_app(settings, &args.app)?;
    let data: serde_json::Value = serde_json::from_str(&args.data)
        .map_err(|e| outbox::OutboxError::BadData(e.to_string()))?;
    if let Some(t) = &args.template {
        let templates = Templates::load(&settings.templates.dir)?;
        anyhow::ensure!(
            templates.contains(t),
            "unknown template {t:?}; add templates/{t}/<locale>.toml (in {})",
            settings.templates.dir.display()
        );
    }
    let n = NewNotification {
        app: args.app,
        user_id: args.user,
        device_ids: (!args.device.is_empty()).then_some(args.device),
        template: args.template,
        title: args.title,
        body: args.body,
        data,
        priority: Priority::parse(&args.priority),
        collapse_key: args.collapse_key,
        ttl_seconds: args.ttl,
        send_at: args.send_at,
        idempotency_key: args.idempotency_key,
    };
    Ok(outbox::enqueue(pool, &n).await?)
}

async fn devices_command(
    settings: &Settings,
    pool: &sqlx::PgPool,
    cmd: DevicesCommand,
) -> anyhow::Result<()> {
    match cmd {
        DevicesCommand::Add {
            app,
            user,
            platform,
            token,
            environment,
            locale,
            timezone,
        } => {
            known_app(settings, &app)?;
            let id = devices::register(
                pool,
                &NewDevice {
                    app: &app,
                    user_id: &user,
                    platform: Platform::parse(&platform)?,
                    token: &token,
                    environment: Environment::parse(&environment)?,
                    locale: &locale,
                    timezone: &timezone,
                },
            )
            .await?;
            println!("{id}");
        }
        DevicesCommand::List { app, user, json } => {
            let rows = devices::list(pool, app.as_deref(), user.as_deref()).await?;
            if json {
                let out: Vec<_> = rows
                    .iter()
                    .map(|d| {
                        let mut v = serde_json::to_value(d).expect("devices serialize");
                        v["token"] = devices::mask_token(&d.token).into();
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "{:<6} {:<10} {:<16} {:<8} {:<14} {:<6} state",
                    "id", "app", "user", "platform", "token", "locale"
                );
                for d in rows {
                    let state = match (&d.invalidated_at, &d.invalidated_reason) {
                        (Some(at), r) => format!(
                            "invalidated {} ({})",
                            at.format("%Y-%m-%d %H:%M"),
                            r.as_deref().unwrap_or("-")
                        ),
                        (None, _) => "active".into(),
                    };
                    println!(
                        "{:<6} {:<10} {:<16} {:<8} {:<14} {:<6} {}",
                        d.id,
                        d.app,
                        d.user_id,
                        d.platform,
                        devices::mask_token(&d.token),
                        d.locale,
                        state
                    );
                }
            }
        }
        DevicesCommand::Remove { id } => {
            devices::remove(pool, id)
                .await
                .context("removing the device")?;
            println!("device {id} removed");
        }
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

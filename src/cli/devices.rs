//! `pushrelay devices add|list|remove`.

use anyhow::Context;
use clap::Subcommand;

use super::send::known_app;
use crate::config::Settings;
use crate::model::{mask_token, Environment, Platform};
use crate::store::devices::{self, NewDevice, Registration};

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Register (or re-register) a device token; prints the device id.
    Add {
        #[arg(long)]
        app: String,
        #[arg(long)]
        user: String,
        #[arg(long, value_parser = parse::<Platform>)]
        platform: Platform,
        #[arg(long)]
        token: String,
        /// APNs gateway the token belongs to.
        #[arg(long, default_value = "production", value_parser = parse::<Environment>)]
        environment: Environment,
        #[arg(long, default_value = "en")]
        locale: String,
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// The app's version on the device (kept when not given).
        #[arg(long)]
        app_version: Option<String>,
        /// The device's tags, comma-separated; replaces the ones it has
        /// (kept when not given; `--tags ""` clears them).
        #[arg(long, value_delimiter = ',')]
        tags: Option<Vec<String>>,
        /// The token this one replaces (the platform issued a new one):
        /// the device keeps its id, history and SNS endpoint.
        #[arg(long)]
        previous_token: Option<String>,
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
    /// Unregister a device (kept, invalidated, so its history stays; a
    /// running daemon deletes its SNS endpoint).
    Remove { id: i64 },
}

fn parse<T: std::str::FromStr<Err = crate::model::UnknownValue>>(s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|e: crate::model::UnknownValue| e.to_string())
}

pub(super) async fn devices_command(
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
            app_version,
            tags,
            previous_token,
        } => {
            known_app(settings, &app)?;
            // `--tags ""` arrives as one empty tag: no tags.
            let tags = tags.map(|t| t.into_iter().filter(|t| !t.is_empty()).collect::<Vec<_>>());
            let new = NewDevice {
                app: &app,
                user_id: &user,
                platform,
                token: &token,
                environment,
                locale: &locale,
                timezone: &timezone,
            };
            let registered = devices::register_device(
                pool,
                &Registration {
                    app_version: app_version.as_deref(),
                    tags: tags.as_deref(),
                    previous_token: previous_token.as_deref(),
                    ..Registration::from(&new)
                },
            )
            .await?;
            // Apps routed through Amazon SNS: the device's endpoint now.
            crate::providers::sns::Endpoints::from_settings(settings)?
                .after_registration(pool, &registered.device)
                .await;
            println!("{}", registered.device.id);
        }
        DevicesCommand::List { app, user, json } => {
            let rows = devices::list(pool, app.as_deref(), user.as_deref()).await?;
            if json {
                // Rows serialize with their tokens masked.
                println!("{}", serde_json::to_string_pretty(&rows)?);
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
                        mask_token(&d.token),
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

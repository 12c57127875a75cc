//! `pushrelay keys create|list|revoke`: the HTTP API's keys. A new key's
//! secret is printed once, on the last line of stdout (so a script can
//! capture it with `tail -n1`); only its hash is stored.

use clap::Subcommand;

use crate::config::Settings;
use crate::store::api_keys::{self, ApiKey, NewKey, Scope};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints its secret once (last line of stdout).
    Create {
        /// Who or what the key is for (shown in listings).
        #[arg(long)]
        name: String,
        /// Comma-separated: send, read, devices, campaigns, admin (admin
        /// allows all).
        #[arg(long, value_delimiter = ',', required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// Limit the key to these apps (comma-separated); default: every app.
        #[arg(long, value_delimiter = ',')]
        apps: Option<Vec<String>>,
        /// Requests per second this key may make (default: api.rate_per_key).
        #[arg(long)]
        rate: Option<u32>,
    },
    /// List keys (never their secrets).
    List {
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or prefix; API processes stop accepting it
    /// within api.key_cache_secs.
    Revoke { key: String },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.trim()
        .parse()
        .map_err(|e: api_keys::KeyError| e.to_string())
}

pub(super) async fn keys_command(
    settings: &Settings,
    pool: &sqlx::PgPool,
    cmd: KeysCommand,
) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            name,
            scopes,
            apps,
            rate,
        } => {
            if let Some(apps) = &apps {
                for app in apps {
                    super::send::known_app(settings, app)?;
                }
            }
            let new = NewKey {
                name,
                scopes,
                apps,
                rate_per_sec: rate.map(|r| r.clamp(1, i32::MAX as u32) as i32),
            };
            let (key, secret) = api_keys::create(pool, &new).await?;
            eprintln!(
                "created API key {} ({}) with scopes {}{}; the secret below is shown only now:",
                key.id,
                key.prefix,
                scopes_text(&key),
                apps_text(&key)
            );
            println!("{secret}");
        }
        KeysCommand::List { all, json } => {
            let keys = api_keys::list(pool, all).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<5} {:<14} {:<20} {:<22} {:<16} {:<20} revoked",
                    "id", "prefix", "name", "scopes", "apps", "last used"
                );
                for k in &keys {
                    println!(
                        "{:<5} {:<14} {:<20} {:<22} {:<16} {:<20} {}",
                        k.id,
                        k.prefix,
                        k.name,
                        scopes_text(k),
                        k.apps
                            .as_ref()
                            .map(|a| a.join(","))
                            .unwrap_or("(all)".into()),
                        k.last_used_at
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or("never".into()),
                        k.revoked_at
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_default(),
                    );
                }
            }
        }
        KeysCommand::Revoke { key } => {
            let k = api_keys::revoke(pool, &key).await?;
            println!(
                "revoked API key {} ({}, {:?}); running API processes stop accepting it within {} s",
                k.id, k.prefix, k.name, settings.api.key_cache_secs
            );
        }
    }
    Ok(())
}

fn scopes_text(k: &ApiKey) -> String {
    k.scopes
        .0
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn apps_text(k: &ApiKey) -> String {
    match &k.apps {
        Some(apps) => format!(" for apps {}", apps.join(",")),
        None => String::new(),
    }
}

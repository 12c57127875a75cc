//! `pushrelay send`: enqueue a notification, as a producer's INSERT would.

use chrono::{DateTime, Utc};
use clap::Args;
use uuid::Uuid;

use crate::config::Settings;
use crate::model::Priority;
use crate::store::notifications::{self, NewNotification, OutboxError};
use crate::templates::Templates;

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
    #[arg(long, required_unless_present_any = ["body", "silent"])]
    pub template: Option<String>,
    /// Inline title (instead of a template).
    #[arg(long, conflicts_with = "template")]
    pub title: Option<String>,
    /// Inline body (instead of a template).
    #[arg(long, conflicts_with = "template")]
    pub body: Option<String>,
    /// Content options as a JSON object (README, "Content options"), e.g.
    /// '{"badge": 0, "thread_id": "payments"}'; the flags below override it.
    #[arg(long)]
    pub options: Option<String>,
    /// apns-push-type: alert, background, voip, complication, fileprovider,
    /// location, liveactivity, pushtotalk or mdm.
    #[arg(long)]
    pub push_type: Option<String>,
    /// App icon badge (0 clears it).
    #[arg(long)]
    pub badge: Option<u32>,
    /// A sound file name, "default", or "none".
    #[arg(long)]
    pub sound: Option<String>,
    /// A silent, data-only push: no visible notification.
    #[arg(long)]
    pub silent: bool,
    /// Template variables, or the custom payload of an inline message: a JSON object.
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// urgent (transactional) or bulk (marketing).
    #[arg(long, default_value = "urgent", value_parser = parse_priority)]
    pub priority: Priority,
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

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse()
        .map_err(|e: crate::model::UnknownValue| e.to_string())
}

/// Refuses an app the configuration does not know, naming the ones it does.
pub(super) fn known_app(settings: &Settings, app: &str) -> anyhow::Result<()> {
    if settings.apps.contains_key(app) {
        return Ok(());
    }
    Err(OutboxError::UnknownApp(
        app.to_owned(),
        settings.apps.keys().cloned().collect::<Vec<_>>().join(", "),
    )
    .into())
}

/// `--options` with the typed flags over it (checked by `enqueue`).
fn options_of(args: &SendArgs) -> anyhow::Result<serde_json::Value> {
    let mut o = match &args.options {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("--options is not JSON: {e}"))?
        }
        None => serde_json::json!({}),
    };
    let Some(map) = o.as_object_mut() else {
        anyhow::bail!("--options must be a JSON object like '{{\"badge\": 1}}'");
    };
    if let Some(p) = &args.push_type {
        map.insert("push_type".into(), p.as_str().into());
    }
    if let Some(b) = args.badge {
        map.insert("badge".into(), b.into());
    }
    if let Some(s) = &args.sound {
        map.insert("sound".into(), s.as_str().into());
    }
    if args.silent {
        map.insert("data_only".into(), true.into());
    }
    Ok(o)
}

pub(super) async fn send(
    settings: &Settings,
    pool: &sqlx::PgPool,
    args: SendArgs,
) -> anyhow::Result<Uuid> {
    known_app(settings, &args.app)?;
    let data: serde_json::Value =
        serde_json::from_str(&args.data).map_err(|e| OutboxError::BadData(e.to_string()))?;
    let options = options_of(&args)?;
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
        priority: Some(args.priority),
        collapse_key: args.collapse_key,
        ttl_seconds: args.ttl,
        send_at: args.send_at,
        idempotency_key: args.idempotency_key,
        options,
    };
    Ok(notifications::enqueue(pool, &n).await?)
}

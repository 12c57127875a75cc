//! `pushrelay status [<id>]`: support's view of one notification, as a
//! table or JSON, and the provider pauses in force with what to check.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::DeliveryState;
use crate::store::holds::{self, Hold};
use crate::store::status::{self, NotificationStatus};

pub(super) async fn run(pool: &sqlx::PgPool, id: Option<Uuid>, json: bool) -> anyhow::Result<()> {
    let pauses = holds::active(pool, None).await?;
    let Some(id) = id else {
        if json {
            println!("{}", serde_json::to_string_pretty(&pauses)?);
        } else {
            print!("{}", render_holds(&pauses));
        }
        return Ok(());
    };
    let report = status::load(pool, id).await?;
    let pauses: Vec<Hold> = pauses.into_iter().filter(|h| h.app == report.app).collect();
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["provider_pauses"] = serde_json::to_value(&pauses)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render_table(&report));
        if !pauses.is_empty() {
            print!("\n{}", render_holds(&pauses));
        }
    }
    Ok(())
}

/// The provider pauses in force, in plain words: which app, platform and
/// environment, why, until when, and what to check.
pub fn render_holds(pauses: &[Hold]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if pauses.is_empty() {
        let _ = writeln!(out, "no provider pauses in force");
        return out;
    }
    let _ = writeln!(out, "provider pauses in force:");
    for h in pauses {
        let _ = writeln!(
            out,
            "  {}/{}/{}: paused until {} ({}, by {}): {}",
            h.app,
            h.platform.as_str(),
            h.environment.as_str(),
            ts(h.paused_until),
            h.kind,
            h.worker,
            h.reason
        );
        let _ = writeln!(out, "    check: {}", h.hint);
    }
    out
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// The table `pushrelay status` prints.
pub fn render_table(n: &NotificationStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "notification {}  app={}  recipient={}  template={}  priority={}",
        n.id,
        n.app,
        n.user_id.as_deref().unwrap_or("(device ids)"),
        n.template.as_deref().unwrap_or("(inline)"),
        n.priority
    );
    let _ = writeln!(
        out,
        "  state: {}{}",
        n.state,
        n.state_reason
            .as_deref()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default()
    );
    if let Some(name) = &n.campaign_name {
        let _ = writeln!(out, "  campaign: {name}");
    }
    let expires = match n.ttl_seconds {
        0 => "now or never (ttl 0: one try, at once)".to_owned(),
        _ => ts(n.expires_at),
    };
    let _ = writeln!(
        out,
        "  created {}  send at {}  expires {expires}",
        ts(n.created_at),
        ts(n.send_at),
    );
    if n.deliveries.is_empty() {
        let _ = writeln!(out, "  no deliveries");
        return out;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<8} {:<8} {:<14} {:<11} {:>8}  detail",
        "device", "platform", "token", "state", "attempts"
    );
    for d in &n.deliveries {
        let detail = match (d.state, &d.last_error, d.next_attempt_at) {
            (DeliveryState::Pending, Some(e), Some(at)) => {
                format!("retry at {} after: {e}", ts(at))
            }
            (DeliveryState::Delivered, _, _) => format!(
                "provider id {}",
                d.provider_message_id.as_deref().unwrap_or("-")
            ),
            (_, Some(e), _) => e.clone(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<8} {:<8} {:<14} {:<11} {:>8}  {}",
            d.device_id,
            d.platform.as_str(),
            d.token.as_deref().unwrap_or("(deleted)"),
            d.state.as_str(),
            d.attempts,
            detail
        );
        for a in &d.history {
            let _ = writeln!(
                out,
                "      #{:<2} {}  {:<9} {:<12} {:>5} ms  {}{}{}",
                a.attempt,
                ts(a.started_at),
                a.provider,
                a.outcome.as_str(),
                a.latency_ms,
                a.status_code
                    .map(|s| format!("HTTP {s} "))
                    .unwrap_or_default(),
                a.reason.as_deref().unwrap_or(""),
                a.retry_at
                    .map(|t| format!(" → retry at {}", ts(t)))
                    .unwrap_or_default()
            );
        }
    }
    out
}

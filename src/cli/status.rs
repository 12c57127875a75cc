//! `pushrelay status <id>`: support's view of one notification, as a table
//! or JSON.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::DeliveryState;
use crate::store::status::{self, NotificationStatus};

pub(super) async fn run(pool: &sqlx::PgPool, id: Uuid, json: bool) -> anyhow::Result<()> {
    let report = status::load(pool, id).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_table(&report));
    }
    Ok(())
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
    let _ = writeln!(
        out,
        "  created {}  send at {}  expires {}",
        ts(n.created_at),
        ts(n.send_at),
        ts(n.expires_at)
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

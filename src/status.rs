//! Support's view: what happened to a notification, device by device,
//! attempt by attempt. Tokens are masked.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::devices::mask_token;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no notification with id {0}")]
    NotFound(Uuid),
    #[error("{open} notifications/deliveries of app {app:?} still in flight after {secs} s; run `pushrelay run` to finish them")]
    StillOpen { app: String, open: i64, secs: u64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct NotificationStatus {
    pub id: Uuid,
    pub app: String,
    pub user_id: Option<String>,
    pub template: Option<String>,
    pub priority: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub send_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub fanned_out_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub deliveries: Vec<DeliveryStatus>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DeliveryStatus {
    pub id: i64,
    pub device_id: i64,
    pub platform: String,
    /// Masked.
    pub token: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub provider_message_id: Option<String>,
    pub last_error: Option<String>,
    #[sqlx(skip)]
    pub history: Vec<AttemptStatus>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct AttemptStatus {
    #[serde(skip)]
    pub delivery_id: i64,
    pub attempt: i32,
    pub worker: String,
    pub provider: String,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i32,
    pub outcome: String,
    pub status_code: Option<i32>,
    pub reason: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
}

pub async fn load(pool: &PgPool, id: Uuid) -> Result<NotificationStatus, StatusError> {
    let mut n: NotificationStatus = sqlx::query_as(
        "SELECT id, app, user_id, template, priority, state, state_reason, created_at, send_at,
                send_at + make_interval(secs => ttl_seconds) AS expires_at, fanned_out_at
           FROM pushrelay.notifications WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StatusError::NotFound(id))?;
    n.deliveries = sqlx::query_as(
        "SELECT d.id, d.device_id, d.platform, v.token, d.state, d.attempts,
                CASE WHEN d.state = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
                d.provider_message_id, d.last_error
           FROM pushrelay.deliveries d JOIN pushrelay.devices v ON v.id = d.device_id
          WHERE d.notification_id = $1 ORDER BY d.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    for d in &mut n.deliveries {
        d.token = mask_token(&d.token);
    }
    let ids: Vec<i64> = n.deliveries.iter().map(|d| d.id).collect();
    let attempts: Vec<AttemptStatus> = sqlx::query_as(
        "SELECT delivery_id, attempt, worker, provider, started_at, latency_ms, outcome,
                status_code, reason, retry_at
           FROM pushrelay.attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for a in attempts {
        if let Some(d) = n.deliveries.iter_mut().find(|d| d.id == a.delivery_id) {
            d.history.push(a);
        }
    }
    Ok(n)
}

/// Notifications not yet fanned out plus deliveries not yet settled, for
/// one app: zero means everything enqueued so far has an outcome.
pub async fn open_work(pool: &PgPool, app: &str) -> Result<i64, StatusError> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pushrelay.notifications WHERE app = $1 AND state = 'pending')
              + (SELECT count(*) FROM pushrelay.deliveries WHERE app = $1 AND state IN ('pending', 'sending'))",
    )
    .bind(app)
    .fetch_one(pool)
    .await?)
}

/// Waits until [`open_work`] is zero, for at most `within`.
pub async fn wait_until_settled(
    pool: &PgPool,
    app: &str,
    within: std::time::Duration,
) -> Result<(), StatusError> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let open = open_work(pool, app).await?;
        if open == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= until {
            return Err(StatusError::StillOpen {
                app: app.to_owned(),
                open,
                secs: within.as_secs(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
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
        let detail = match (d.state.as_str(), &d.last_error, d.next_attempt_at) {
            ("pending", Some(e), Some(at)) => format!("retry at {} after: {e}", ts(at)),
            ("delivered", _, _) => format!(
                "provider id {}",
                d.provider_message_id.as_deref().unwrap_or("-")
            ),
            (_, Some(e), _) => e.clone(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<8} {:<8} {:<14} {:<11} {:>8}  {}",
            d.device_id, d.platform, d.token, d.state, d.attempts, detail
        );
        for a in &d.history {
            let _ = writeln!(
                out,
                "      #{:<2} {}  {:<9} {:<12} {:>5} ms  {}{}{}",
                a.attempt,
                ts(a.started_at),
                a.provider,
                a.outcome,
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

//! Device receipts: what the app on a device reports about a notification
//! it got (received, displayed, opened), so delivery and open rates are
//! the devices' word, not only the providers' acceptance.
//!
//! A receipt is recorded once per delivery and event: the apps retry their
//! reports over flaky networks, and a repeat changes nothing. A receipt
//! leaves the delivery's state alone: that state is what the provider
//! said, and both are shown side by side.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

const RECORD: &str = include_str!("receipts/record.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[("receipts/record", RECORD)];

/// What a device reports. Stored as text (`device_receipts.event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The app got the notification (a background handler or extension ran).
    Received,
    /// The system showed it to the user.
    Displayed,
    /// The user opened it.
    Opened,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Received => "received",
            Event::Displayed => "displayed",
            Event::Opened => "opened",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("no delivery of notification {notification_id} to device {device_id}")]
    NoDelivery {
        notification_id: Uuid,
        device_id: i64,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One report from a device.
#[derive(Debug, Clone)]
pub struct Report {
    pub notification_id: Uuid,
    pub device_id: i64,
    pub event: Event,
    /// When the device says it happened; `None`: now.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// What became of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub delivery_id: i64,
    pub app: String,
    /// `false`: this event of this delivery was already reported.
    pub new: bool,
    /// When it happened, as the stored (first) report says.
    pub occurred_at: DateTime<Utc>,
}

/// Records a report about a delivery of one of the apps `apps` allows
/// (`None`: any). A delivery of another app is `NoDelivery`, as if it did
/// not exist. Counts `pushrelay_device_receipts_total{app, event}` when the
/// report is new.
pub async fn record(
    pool: &PgPool,
    report: &Report,
    apps: Option<&[String]>,
) -> Result<Recorded, ReceiptError> {
    let row: Option<(i64, String, bool, DateTime<Utc>)> = sqlx::query_as(RECORD)
        .bind(report.notification_id)
        .bind(report.device_id)
        .bind(report.event.as_str())
        .bind(report.occurred_at)
        .bind(apps)
        .fetch_optional(pool)
        .await?;
    let Some((delivery_id, app, new, occurred_at)) = row else {
        return Err(ReceiptError::NoDelivery {
            notification_id: report.notification_id,
            device_id: report.device_id,
        });
    };
    if new {
        metrics::counter!("pushrelay_device_receipts_total", "app" => app.clone(), "event" => report.event.as_str())
            .increment(1);
    }
    Ok(Recorded {
        delivery_id,
        app,
        new,
        occurred_at,
    })
}

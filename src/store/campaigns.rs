//! Campaigns: marketing's sends to a segment of an app's devices.
//!
//! A campaign is saved `scheduled`. When its start comes, the pump (see
//! [`pump`]) fixes its audience as the devices registered so far and
//! evaluates it in chunks of device ids into `campaign_targets`, one row
//! per device with the moment it is due (the campaign's time, or a
//! wall-clock time in the device's timezone, moved out of the app's quiet
//! hours for bulk sends) and the moment it expires (due + TTL). Each step
//! then turns up to the throttle's allowance of due targets into
//! notifications, one per user naming the devices targeted, which the
//! ordinary bulk fan-out sends behind every urgent alert. The audience
//! never passes through this process's memory, and the outbox holds at
//! most a batch or two of a campaign at a time, so pausing takes back
//! what was not yet sent.
//!
//! Every change to a campaign (pause, resume, cancel, edit, a pump step)
//! locks its row first, so two callers, or two processes, take turns and
//! each sees what the other did: every control is idempotent.

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

pub use crate::model::CampaignState;
use crate::model::{Environment, Platform, Priority, UnknownValue};
use crate::store::notifications::{self, NewNotification, OutboxError};

const PREVIEW: &str = concat!(
    include_str!("campaigns/audience.sql"),
    include_str!("campaigns/preview.sql")
);
const EVALUATE: &str = concat!(
    include_str!("campaigns/audience.sql"),
    include_str!("campaigns/evaluate.sql")
);
const GET: &str = concat!(
    include_str!("campaigns/columns.sql"),
    include_str!("campaigns/get.sql")
);
const LIST: &str = concat!(
    include_str!("campaigns/columns.sql"),
    include_str!("campaigns/list.sql")
);
const LOCK: &str = concat!(
    include_str!("campaigns/columns.sql"),
    include_str!("campaigns/lock.sql")
);
const LOCK_ACTIVE: &str = concat!(
    include_str!("campaigns/columns.sql"),
    include_str!("campaigns/lock_active.sql")
);
const INSERT: &str = include_str!("campaigns/insert.sql");
const ACTIVE: &str = include_str!("campaigns/active.sql");
const START: &str = include_str!("campaigns/start.sql");
const EVALUATED: &str = include_str!("campaigns/evaluated.sql");
const BACKLOG: &str = include_str!("campaigns/backlog.sql");
const PUMP: &str = include_str!("campaigns/pump.sql");
const EXPIRE: &str = include_str!("campaigns/expire.sql");
const PACED: &str = include_str!("campaigns/paced.sql");
const COMPLETE: &str = include_str!("campaigns/complete.sql");
const SET_STATE: &str = include_str!("campaigns/set_state.sql");
const UNQUEUE: &str = include_str!("campaigns/unqueue.sql");
const CANCEL: &str = include_str!("campaigns/cancel.sql");
const CANCEL_NOTIFICATIONS: &str = include_str!("campaigns/cancel_notifications.sql");
const CANCEL_DELIVERIES: &str = include_str!("campaigns/cancel_deliveries.sql");
const EDIT: &str = include_str!("campaigns/edit.sql");
const TARGET_COUNTS: &str = include_str!("campaigns/target_counts.sql");
const DELIVERY_COUNTS: &str = include_str!("campaigns/delivery_counts.sql");
const OPENED: &str = include_str!("campaigns/opened.sql");
const NOTIFICATION_COUNTS: &str = include_str!("campaigns/notification_counts.sql");
const SNAPSHOT: &str = include_str!("campaigns/snapshot.sql");
const USER_LIST_INSERT: &str = include_str!("campaigns/user_list_insert.sql");
const USER_LIST_COUNT: &str = include_str!("campaigns/user_list_count.sql");
const USER_LIST_GET: &str = include_str!("campaigns/user_list_get.sql");
const USER_LIST_DELETE: &str = include_str!("campaigns/user_list_delete.sql");
const UPLOAD_TABLE: &str = include_str!("campaigns/upload_table.sql");
const UPLOAD_COPY: &str = include_str!("campaigns/upload_copy.sql");
const UPLOAD_MEMBERS: &str = include_str!("campaigns/upload_members.sql");

pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("campaigns/preview", PREVIEW),
    ("campaigns/evaluate", EVALUATE),
    ("campaigns/get", GET),
    ("campaigns/list", LIST),
    ("campaigns/lock", LOCK),
    ("campaigns/lock_active", LOCK_ACTIVE),
    ("campaigns/insert", INSERT),
    ("campaigns/active", ACTIVE),
    ("campaigns/start", START),
    ("campaigns/evaluated", EVALUATED),
    ("campaigns/backlog", BACKLOG),
    ("campaigns/pump", PUMP),
    ("campaigns/expire", EXPIRE),
    ("campaigns/paced", PACED),
    ("campaigns/complete", COMPLETE),
    ("campaigns/set_state", SET_STATE),
    ("campaigns/unqueue", UNQUEUE),
    ("campaigns/cancel", CANCEL),
    ("campaigns/cancel_notifications", CANCEL_NOTIFICATIONS),
    ("campaigns/cancel_deliveries", CANCEL_DELIVERIES),
    ("campaigns/edit", EDIT),
    ("campaigns/target_counts", TARGET_COUNTS),
    ("campaigns/delivery_counts", DELIVERY_COUNTS),
    ("campaigns/opened", OPENED),
    ("campaigns/notification_counts", NOTIFICATION_COUNTS),
    ("campaigns/snapshot", SNAPSHOT),
    ("campaigns/user_list_insert", USER_LIST_INSERT),
    ("campaigns/user_list_count", USER_LIST_COUNT),
    ("campaigns/user_list_get", USER_LIST_GET),
    ("campaigns/user_list_delete", USER_LIST_DELETE),
];

/// Longest campaign and user list name.
const MAX_NAME_CHARS: usize = 200;
/// A schedule this far in the past is still "now" (clocks differ, and a
/// request takes time).
const PAST_GRACE: Duration = Duration::seconds(60);
/// A date's wall-clock time comes first at UTC+14 (Kiribati) and last at
/// UTC−12.
const EARLIEST_OFFSET_HOURS: i64 = 14;
const LATEST_OFFSET_HOURS: i64 = 12;

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("name must be 1 to {MAX_NAME_CHARS} characters")]
    BadName,
    #[error("unknown app {0:?}; configured apps are: {1}")]
    UnknownApp(String, String),
    #[error(transparent)]
    Content(OutboxError),
    #[error(
        "the audience is empty: give at least one segment filter or a user list; to reach \
         every device of the app, say \"segment\": {{\"all\": true}}"
    )]
    EmptyAudience,
    #[error("the segment's \"all\": true cannot be combined with filters; drop one or the other")]
    AllWithFilters,
    #[error("segment.{field}: {problem}")]
    BadSegment {
        field: &'static str,
        problem: String,
    },
    #[error("the audience reaches no device (no device of the app matches the segment{list}); check the filters with a preview")]
    ReachesNoDevice { list: &'static str },
    #[error("no user list {0} for this app; upload one with POST /v1/user-lists")]
    UnknownUserList(Uuid),
    #[error("schedule.{field}: {problem}")]
    BadSchedule {
        field: &'static str,
        problem: String,
    },
    #[error("the schedule is in the past ({0}); give a time to come, or leave the schedule out to start now")]
    InPast(String),
    #[error("throttle_per_minute must be at least 1 (or left out for no throttle); got {0}")]
    BadThrottle(i64),
    #[error("ttl_seconds must be between 1 and 2419200 (28 days); got {0}")]
    BadTtl(i64),
    #[error(
        "the TTL is too short for the throttle: {devices} devices due at once at \
         {throttle} a minute take {needed_secs} s to send, but each expires after \
         {ttl_secs} s; raise ttl_seconds to at least {needed_secs} or the throttle to at \
         least {throttle_needed} a minute"
    )]
    TtlTooShort {
        devices: i64,
        throttle: i64,
        needed_secs: i64,
        ttl_secs: i64,
        throttle_needed: i64,
    },
    #[error("no campaign {0}")]
    NotFound(Uuid),
    #[error(
        "campaign {id} has started sending; its {what} can no longer be changed (cancel it and \
         create another)"
    )]
    Started { id: Uuid, what: &'static str },
    #[error("campaign {id} is {state}; it cannot be {action}")]
    Finished {
        id: Uuid,
        state: CampaignState,
        action: &'static str,
    },
    #[error("the user list must be CSV with one user id per line: {0}")]
    BadUpload(String),
    #[error(transparent)]
    Unknown(#[from] UnknownValue),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl CampaignError {
    /// The request field the problem is in, when it is one field's.
    pub fn field(&self) -> Option<String> {
        Some(match self {
            CampaignError::BadName => "name".into(),
            CampaignError::UnknownApp(..) => "app".into(),
            CampaignError::Content(e) => e.field()?.into(),
            CampaignError::EmptyAudience | CampaignError::ReachesNoDevice { .. } => {
                "segment".into()
            }
            CampaignError::AllWithFilters => "segment.all".into(),
            CampaignError::BadSegment { field, .. } => format!("segment.{field}"),
            CampaignError::UnknownUserList(_) => "user_list_id".into(),
            CampaignError::BadSchedule { field, .. } => format!("schedule.{field}"),
            CampaignError::InPast(_) => "schedule".into(),
            CampaignError::BadThrottle(_) => "throttle_per_minute".into(),
            CampaignError::BadTtl(_) | CampaignError::TtlTooShort { .. } => "ttl_seconds".into(),
            _ => return None,
        })
    }
}

/// Which of an app's devices a campaign reaches. Every filter given must
/// match; a list filter matches a device that has any of its values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Every device of the app (no other filter may be given).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<Platform>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<Environment>>,
    /// A language ("de") matches its regional locales ("de-AT") too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locales: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezones: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<VersionRange>,
    /// The device has every one of these tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_all: Option<Vec<String>>,
    /// The device has at least one of these tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_any: Option<Vec<String>>,
    /// The device has none of these tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_none: Option<Vec<String>>,
    /// The device's attributes contain this object (JSON containment: a
    /// key given must be there with this value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// The app reported the device within this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_within_days: Option<u32>,
}

/// An inclusive app version range, compared part by part ("5.10" > "5.9").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

impl Segment {
    fn has_filters(&self) -> bool {
        self != &Segment {
            all: self.all,
            ..Segment::default()
        }
    }

    /// Refuses what cannot match anything sensible, naming the field.
    pub fn check(&self) -> Result<(), CampaignError> {
        if self.all && self.has_filters() {
            return Err(CampaignError::AllWithFilters);
        }
        let lists: [(&'static str, &Option<Vec<String>>); 5] = [
            ("locales", &self.locales),
            ("timezones", &self.timezones),
            ("tags_all", &self.tags_all),
            ("tags_any", &self.tags_any),
            ("tags_none", &self.tags_none),
        ];
        for (field, list) in lists {
            if let Some(l) = list {
                if l.is_empty() {
                    return Err(bad_segment(
                        field,
                        "an empty list matches nothing; leave the filter out instead",
                    ));
                }
                if l.iter().any(|v| v.is_empty() || v.contains('\0')) {
                    return Err(bad_segment(
                        field,
                        "values must be non-empty text without NUL characters",
                    ));
                }
            }
        }
        if self.platforms.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad_segment(
                "platforms",
                "an empty list matches nothing; leave the filter out instead",
            ));
        }
        if self.environments.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad_segment(
                "environments",
                "an empty list matches nothing; leave the filter out instead",
            ));
        }
        if let Some(r) = &self.app_version {
            for (field, v) in [("app_version.min", &r.min), ("app_version.max", &r.max)] {
                if let Some(v) = v {
                    let numeric = v
                        .split('-')
                        .next()
                        .unwrap_or("")
                        .split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                    if !numeric || v.len() > 64 {
                        return Err(bad_segment(
                            field,
                            format!("{v:?} is not a version like \"5.2.0\""),
                        ));
                    }
                }
            }
            if r.min.is_none() && r.max.is_none() {
                return Err(bad_segment("app_version", "give min, max or both"));
            }
        }
        if let Some(a) = &self.attributes {
            if a.is_empty() {
                return Err(bad_segment(
                    "attributes",
                    "an empty object matches every device; leave the filter out instead",
                ));
            }
            if crate::store::notifications::has_nul(&serde_json::Value::Object(a.clone())) {
                return Err(bad_segment(
                    "attributes",
                    "values must not contain NUL characters",
                ));
            }
        }
        if self.last_seen_within_days == Some(0) {
            return Err(bad_segment("last_seen_within_days", "must be at least 1"));
        }
        Ok(())
    }
}

fn bad_segment(field: &'static str, problem: impl Into<String>) -> CampaignError {
    CampaignError::BadSegment {
        field,
        problem: problem.into(),
    }
}

/// When a campaign's devices are due: at one moment (`at`; none: now), or
/// at a wall-clock time on a date in each device's own timezone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// "09:00": with `date`, due at 09:00 on that date where each device is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
}

/// A schedule made concrete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    At(DateTime<Utc>),
    Local { date: NaiveDate, time: NaiveTime },
}

impl When {
    /// When the audience is evaluated: the moment, or the first place on
    /// Earth reaching the local time.
    pub fn starts_at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            When::At(t) => t,
            When::Local { date, time } => {
                (date.and_time(time).and_utc() - Duration::hours(EARLIEST_OFFSET_HOURS)).max(now)
            }
        }
    }
}

impl Schedule {
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<When, CampaignError> {
        match (&self.at, &self.local_time, &self.date) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(CampaignError::BadSchedule {
                field: "at",
                problem: "give either at, or local_time with date, not both".into(),
            }),
            (at, None, None) => {
                let at = at.unwrap_or(now);
                if at < now - PAST_GRACE {
                    return Err(CampaignError::InPast(at.to_rfc3339()));
                }
                Ok(When::At(at.max(now)))
            }
            (None, Some(_), None) => Err(CampaignError::BadSchedule {
                field: "date",
                problem: "a local_time needs the date it is on, e.g. \"2026-12-01\"".into(),
            }),
            (None, None, Some(_)) => Err(CampaignError::BadSchedule {
                field: "local_time",
                problem: "a date needs the local_time on it, e.g. \"09:00\"".into(),
            }),
            (None, Some(t), Some(date)) => {
                let time = NaiveTime::parse_from_str(t, "%H:%M")
                    .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
                    .map_err(|_| CampaignError::BadSchedule {
                        field: "local_time",
                        problem: format!("{t:?} is not a wall-clock time like \"09:00\""),
                    })?;
                let last = date.and_time(time).and_utc() + Duration::hours(LATEST_OFFSET_HOURS);
                if last < now - PAST_GRACE {
                    return Err(CampaignError::InPast(format!(
                        "{t} on {date} has passed in every timezone"
                    )));
                }
                Ok(When::Local { date: *date, time })
            }
        }
    }
}

/// What a campaign says, as created.
#[derive(Debug, Clone, Default)]
pub struct NewCampaign {
    pub app: String,
    pub name: String,
    pub content: Content,
    pub priority: Option<Priority>,
    pub ttl_seconds: Option<i64>,
    pub category: Option<String>,
    pub segment: Segment,
    pub user_list_id: Option<Uuid>,
    pub schedule: Schedule,
    pub throttle_per_minute: Option<i64>,
    pub created_by: Option<String>,
}

/// A campaign's content: a notification's content fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
    #[serde(default)]
    pub options: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
}

impl Content {
    /// Checks the content by a notification's rules; returns it as stored
    /// (`null` data and options become `{}`).
    pub fn check(&self, app: &str) -> Result<Content, CampaignError> {
        let n = NewNotification {
            app: app.to_owned(),
            user_id: Some("campaign".into()),
            template: self.template.clone(),
            title: self.title.clone(),
            body: self.body.clone(),
            data: self.data.clone(),
            collapse_key: self.collapse_key.clone(),
            options: self.options.clone(),
            ..NewNotification::default()
        };
        let (data, options) = notifications::check(&n).map_err(CampaignError::Content)?;
        Ok(Content {
            data,
            options,
            ..self.clone()
        })
    }

    /// Marks the campaign's notifications as checked (migration 0007).
    fn digest(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("content serializes");
        Sha256::digest(json).to_vec()
    }
}

/// A stored campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    pub id: Uuid,
    pub app: String,
    pub name: String,
    #[serde(flatten)]
    pub content: Content,
    pub priority: Priority,
    pub ttl_seconds: i32,
    pub category: Option<String>,
    pub segment: Segment,
    pub user_list_id: Option<Uuid>,
    pub schedule: Schedule,
    pub starts_at: DateTime<Utc>,
    pub throttle_per_minute: Option<i32>,
    pub state: CampaignState,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    paced_until: Option<DateTime<Utc>>,
    #[serde(skip)]
    audience_max_device_id: Option<i64>,
    #[serde(skip)]
    evaluated_through: Option<i64>,
    #[serde(skip)]
    when: When,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Campaign {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let decode =
            |e: Box<dyn std::error::Error + Send + Sync>, index: &str| sqlx::Error::ColumnDecode {
                index: index.into(),
                source: e,
            };
        let priority: String = row.try_get("priority")?;
        let state: String = row.try_get("state")?;
        let segment: serde_json::Value = row.try_get("segment")?;
        let send_at: Option<DateTime<Utc>> = row.try_get("send_at")?;
        let local_date: Option<NaiveDate> = row.try_get("local_date")?;
        let local_time: Option<NaiveTime> = row.try_get("local_time")?;
        let when = match (send_at, local_date, local_time) {
            (Some(at), _, _) => When::At(at),
            (None, Some(date), Some(time)) => When::Local { date, time },
            _ => return Err(decode("a campaign without a schedule".into(), "send_at")),
        };
        let schedule = match when {
            When::At(at) => Schedule {
                at: Some(at),
                ..Schedule::default()
            },
            When::Local { date, time } => Schedule {
                local_time: Some(time.format("%H:%M").to_string()),
                date: Some(date),
                at: None,
            },
        };
        Ok(Campaign {
            id: row.try_get("id")?,
            app: row.try_get("app")?,
            name: row.try_get("name")?,
            content: Content {
                template: row.try_get("template")?,
                title: row.try_get("title")?,
                body: row.try_get("body")?,
                data: row.try_get("data")?,
                options: row.try_get("options")?,
                collapse_key: row.try_get("collapse_key")?,
            },
            priority: priority
                .parse()
                .map_err(|e| decode(Box::new(e), "priority"))?,
            ttl_seconds: row.try_get("ttl_seconds")?,
            category: row.try_get("category")?,
            segment: serde_json::from_value(segment).map_err(|e| decode(Box::new(e), "segment"))?,
            user_list_id: row.try_get("user_list_id")?,
            schedule,
            starts_at: row.try_get("starts_at")?,
            throttle_per_minute: row.try_get("throttle_per_minute")?,
            state: state.parse().map_err(|e| decode(Box::new(e), "state"))?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            started_at: row.try_get("started_at")?,
            paused_at: row.try_get("paused_at")?,
            cancelled_at: row.try_get("cancelled_at")?,
            completed_at: row.try_get("completed_at")?,
            paced_until: row.try_get("paced_until")?,
            audience_max_device_id: row.try_get("audience_max_device_id")?,
            evaluated_through: row.try_get("evaluated_through")?,
            when,
        })
    }
}

/// What the store needs to know of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// 'app/platform' pairs with a provider: the platforms a campaign can reach.
    pub routes: Vec<String>,
    /// Per app, its quiet hours (start, end) in devices' local time.
    pub quiet_hours: std::collections::BTreeMap<String, (NaiveTime, NaiveTime)>,
}

impl Context {
    fn quiet(&self, app: &str, priority: Priority) -> (Option<NaiveTime>, Option<NaiveTime>) {
        match (priority, self.quiet_hours.get(app)) {
            (Priority::Bulk, Some((s, e))) => (Some(*s), Some(*e)),
            _ => (None, None),
        }
    }
}

/// What an audience reaches, per platform and in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reach {
    pub users: i64,
    pub devices: i64,
    /// Matching devices skipped: no consent for the campaign's category.
    pub no_consent: i64,
    pub by_platform: std::collections::BTreeMap<Platform, PlatformReach>,
    /// The most devices due at one moment (a local-time campaign's largest
    /// timezone wave).
    pub largest_wave: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PlatformReach {
    pub users: i64,
    pub devices: i64,
    pub no_consent: i64,
}

/// The audience's filters, bound as audience.sql's parameters.
#[allow(clippy::too_many_arguments)]
fn bind_audience<'q>(
    q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    app: &'q str,
    ctx: &'q Context,
    range: (i64, Option<i64>),
    segment: &Segment,
    user_list_id: Option<Uuid>,
    category: Option<&'q str>,
    now: DateTime<Utc>,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    let strings = |v: &Option<Vec<String>>| v.clone();
    let locales = segment.locales.as_ref().map(|l| {
        l.iter()
            .map(|s| s.replace('_', "-").to_lowercase())
            .collect::<Vec<_>>()
    });
    q.bind(app)
        .bind(&ctx.routes)
        .bind(range.0)
        .bind(range.1)
        .bind(
            segment
                .platforms
                .as_ref()
                .map(|p| p.iter().map(|p| p.as_str()).collect::<Vec<_>>()),
        )
        .bind(
            segment
                .environments
                .as_ref()
                .map(|p| p.iter().map(|p| p.as_str()).collect::<Vec<_>>()),
        )
        .bind(locales)
        .bind(strings(&segment.timezones))
        .bind(segment.app_version.as_ref().and_then(|r| r.min.clone()))
        .bind(segment.app_version.as_ref().and_then(|r| r.max.clone()))
        .bind(strings(&segment.tags_all))
        .bind(strings(&segment.tags_any))
        .bind(strings(&segment.tags_none))
        .bind(
            segment
                .attributes
                .as_ref()
                .map(|a| serde_json::Value::Object(a.clone())),
        )
        .bind(segment.last_seen_within_days.map(|d| i64::from(d) * 86_400))
        .bind(user_list_id)
        .bind(category)
        .bind(now)
}

fn local_parts(when: When) -> (Option<DateTime<Utc>>, Option<NaiveDate>, Option<NaiveTime>) {
    match when {
        When::At(t) => (Some(t), None, None),
        When::Local { date, time } => (None, Some(date), Some(time)),
    }
}

/// Counts what an audience reaches now (a campaign's is fixed only when
/// it starts).
#[allow(clippy::too_many_arguments)]
pub async fn preview(
    pool: &PgPool,
    ctx: &Context,
    app: &str,
    segment: &Segment,
    user_list_id: Option<Uuid>,
    category: Option<&str>,
    when: When,
    now: DateTime<Utc>,
) -> Result<Reach, CampaignError> {
    let (_, date, time) = local_parts(when);
    let rows = bind_audience(
        sqlx::query(PREVIEW),
        app,
        ctx,
        (0, None),
        segment,
        user_list_id,
        category,
        now,
    )
    .bind(date)
    .bind(time)
    .fetch_all(pool)
    .await?;
    let mut reach = Reach::default();
    for row in rows {
        use sqlx::Row;
        let platform: Option<String> = row.try_get("platform")?;
        let devices: i64 = row.try_get("devices")?;
        let users: i64 = row.try_get("users")?;
        let no_consent: i64 = row.try_get("no_consent")?;
        let wave: i64 = row.try_get("largest_wave")?;
        match platform {
            None => {
                reach.devices = devices;
                reach.users = users;
                reach.no_consent = no_consent;
                reach.largest_wave = wave;
            }
            Some(p) => {
                reach.by_platform.insert(
                    p.parse()?,
                    PlatformReach {
                        users,
                        devices,
                        no_consent,
                    },
                );
            }
        }
    }
    Ok(reach)
}

/// Checks a new campaign and everything it names, the audience's reach
/// against the throttle and TTL included, and saves it `scheduled`.
pub async fn create(
    pool: &PgPool,
    ctx: &Context,
    apps: &[String],
    new: &NewCampaign,
    now: DateTime<Utc>,
) -> Result<(Campaign, Reach), CampaignError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
        return Err(CampaignError::BadName);
    }
    if !apps.iter().any(|a| a == &new.app) {
        return Err(CampaignError::UnknownApp(new.app.clone(), apps.join(", ")));
    }
    let content = new.content.check(&new.app)?;
    if new
        .category
        .as_deref()
        .is_some_and(|c| c.is_empty() || c.contains('\0') || c.len() > 64)
    {
        return Err(CampaignError::BadSegment {
            field: "category",
            problem: "a consent category is 1 to 64 characters, e.g. \"marketing\"".into(),
        });
    }
    new.segment.check()?;
    if !new.segment.all && !new.segment.has_filters() && new.user_list_id.is_none() {
        return Err(CampaignError::EmptyAudience);
    }
    if let Some(list) = new.user_list_id {
        if user_list(pool, list, Some(std::slice::from_ref(&new.app)))
            .await?
            .is_none()
        {
            return Err(CampaignError::UnknownUserList(list));
        }
    }
    let ttl = new.ttl_seconds.unwrap_or(86_400);
    if !(1..=2_419_200).contains(&ttl) {
        return Err(CampaignError::BadTtl(ttl));
    }
    if let Some(t) = new.throttle_per_minute {
        if !(1..=i64::from(i32::MAX)).contains(&t) {
            return Err(CampaignError::BadThrottle(t));
        }
    }
    let when = new.schedule.resolve(now)?;
    let reach = preview(
        pool,
        ctx,
        &new.app,
        &new.segment,
        new.user_list_id,
        new.category.as_deref(),
        when,
        now,
    )
    .await?;
    if reach.devices == 0 && reach.no_consent == 0 {
        return Err(CampaignError::ReachesNoDevice {
            list: if new.user_list_id.is_some() {
                " and is on the user list"
            } else {
                ""
            },
        });
    }
    if let Some(throttle) = new.throttle_per_minute {
        check_pace(reach.largest_wave, throttle, ttl)?;
    }
    let (send_at, local_date, local_time) = local_parts(when);
    let id: Uuid = sqlx::query_scalar(INSERT)
        .bind(&new.app)
        .bind(name)
        .bind(&content.template)
        .bind(&content.title)
        .bind(&content.body)
        .bind(&content.data)
        .bind(&content.options)
        .bind(&content.collapse_key)
        .bind(new.priority.unwrap_or(Priority::Bulk).as_str())
        .bind(ttl as i32)
        .bind(&new.category)
        .bind(serde_json::to_value(&new.segment).expect("segment serializes"))
        .bind(new.user_list_id)
        .bind(send_at)
        .bind(local_date)
        .bind(local_time)
        .bind(when.starts_at(now))
        .bind(new.throttle_per_minute.map(|t| t as i32))
        .bind(&new.created_by)
        .fetch_one(pool)
        .await?;
    let campaign = get(pool, id, None)
        .await?
        .ok_or(CampaignError::NotFound(id))?;
    Ok((campaign, reach))
}

/// The devices due at one moment must all be sent within the TTL.
fn check_pace(devices: i64, throttle: i64, ttl: i64) -> Result<(), CampaignError> {
    let needed_secs = (devices * 60 + throttle - 1) / throttle;
    if needed_secs > ttl {
        return Err(CampaignError::TtlTooShort {
            devices,
            throttle,
            needed_secs,
            ttl_secs: ttl,
            throttle_needed: (devices * 60 + ttl - 1) / ttl,
        });
    }
    Ok(())
}

pub async fn get(
    pool: &PgPool,
    id: Uuid,
    apps: Option<&[String]>,
) -> Result<Option<Campaign>, sqlx::Error> {
    sqlx::query_as(GET)
        .bind(id)
        .bind(apps)
        .fetch_optional(pool)
        .await
}

/// A page of campaigns, newest first, and the cursor of the next one.
pub async fn list(
    pool: &PgPool,
    app: Option<&str>,
    apps: Option<&[String]>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Campaign>, sqlx::Error> {
    sqlx::query_as(LIST)
        .bind(app)
        .bind(apps)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit)
        .fetch_all(pool)
        .await
}

async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    apps: Option<&[String]>,
) -> Result<Campaign, CampaignError> {
    sqlx::query_as(LOCK)
        .bind(id)
        .bind(apps)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(CampaignError::NotFound(id))
}

/// Pauses a scheduled or running campaign: nothing more is queued, and
/// what was queued but not yet fanned out goes back to wait, so at most
/// the batch being fanned out at this moment is still sent. Pausing a
/// paused campaign changes nothing.
pub async fn pause(
    pool: &PgPool,
    id: Uuid,
    apps: Option<&[String]>,
) -> Result<Campaign, CampaignError> {
    pause_or_resume(pool, id, apps, true).await
}

/// Resumes a paused campaign where it stopped (targets already queued are
/// never queued again). Resuming one that is not paused changes nothing.
pub async fn resume(
    pool: &PgPool,
    id: Uuid,
    apps: Option<&[String]>,
) -> Result<Campaign, CampaignError> {
    pause_or_resume(pool, id, apps, false).await
}

async fn pause_or_resume(
    pool: &PgPool,
    id: Uuid,
    apps: Option<&[String]>,
    pause: bool,
) -> Result<Campaign, CampaignError> {
    let mut tx = pool.begin().await?;
    let c = lock(&mut tx, id, apps).await?;
    let to = match (c.state, pause) {
        (state @ (CampaignState::Completed | CampaignState::Cancelled), _) => {
            return Err(CampaignError::Finished {
                id,
                state,
                action: if pause { "paused" } else { "resumed" },
            })
        }
        (CampaignState::Scheduled | CampaignState::Running, true) => Some(CampaignState::Paused),
        (CampaignState::Paused, false) if c.started_at.is_some() => Some(CampaignState::Running),
        (CampaignState::Paused, false) => Some(CampaignState::Scheduled),
        // Already there.
        _ => None,
    };
    if let Some(to) = to {
        sqlx::query(SET_STATE)
            .bind(id)
            .bind(to.as_str())
            .execute(&mut *tx)
            .await?;
        if pause {
            sqlx::query(UNQUEUE).bind(id).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    get(pool, id, None)
        .await?
        .ok_or(CampaignError::NotFound(id))
}

/// Cancels a campaign: every target still waiting, every notification not
/// yet fanned out and every delivery waiting for a (re)try is cancelled;
/// what was sent stays sent, and a try in flight is never retried.
/// Cancelling twice changes nothing the second time.
pub async fn cancel(
    pool: &PgPool,
    id: Uuid,
    apps: Option<&[String]>,
) -> Result<Campaign, CampaignError> {
    let mut tx = pool.begin().await?;
    let c = lock(&mut tx, id, apps).await?;
    if c.state != CampaignState::Cancelled {
        sqlx::query(CANCEL).bind(id).execute(&mut *tx).await?;
        sqlx::query(CANCEL_NOTIFICATIONS)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(CANCEL_DELIVERIES)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    get(pool, id, None)
        .await?
        .ok_or(CampaignError::NotFound(id))
}

/// An edit of a campaign: the fields given change.
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub name: Option<String>,
    /// New content: refused once the campaign has started sending.
    pub content: Option<Content>,
    /// A new throttle (`Some(None)`: none), at any time before the end.
    pub throttle_per_minute: Option<Option<i64>>,
}

pub async fn edit(
    pool: &PgPool,
    id: Uuid,
    apps: Option<&[String]>,
    edit: &Edit,
) -> Result<Campaign, CampaignError> {
    if let Some(name) = &edit.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
            return Err(CampaignError::BadName);
        }
    }
    if let Some(Some(t)) = edit.throttle_per_minute {
        if !(1..=i64::from(i32::MAX)).contains(&t) {
            return Err(CampaignError::BadThrottle(t));
        }
    }
    let mut tx = pool.begin().await?;
    let c = lock(&mut tx, id, apps).await?;
    if matches!(c.state, CampaignState::Completed | CampaignState::Cancelled) {
        return Err(CampaignError::Finished {
            id,
            state: c.state,
            action: "edited",
        });
    }
    let content = match &edit.content {
        Some(_) if c.started_at.is_some() => {
            return Err(CampaignError::Started {
                id,
                what: "content",
            })
        }
        Some(content) => Some(content.check(&c.app)?),
        None => None,
    };
    let content_ref = content.as_ref();
    sqlx::query(EDIT)
        .bind(id)
        .bind(edit.name.as_deref().map(str::trim))
        .bind(content.is_some())
        .bind(content_ref.and_then(|c| c.template.clone()))
        .bind(content_ref.and_then(|c| c.title.clone()))
        .bind(content_ref.and_then(|c| c.body.clone()))
        .bind(content_ref.map(|c| c.data.clone()))
        .bind(content_ref.map(|c| c.options.clone()))
        .bind(content_ref.and_then(|c| c.collapse_key.clone()))
        .bind(edit.throttle_per_minute.is_some())
        .bind(edit.throttle_per_minute.flatten().map(|t| t as i32))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    get(pool, id, None)
        .await?
        .ok_or(CampaignError::NotFound(id))
}

/// How far a campaign has come, per platform and in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    #[serde(flatten)]
    pub total: Counts,
    pub by_platform: std::collections::BTreeMap<Platform, Counts>,
    /// Devices queued for sending in the last minute.
    pub per_minute: i64,
    /// When the last device should have been handed over, at this rate and
    /// schedule; none when nothing is left or nothing moves.
    pub eta: Option<DateTime<Utc>>,
    /// Nothing is left to happen: every target and delivery is final.
    pub finished: bool,
}

/// Devices by what became of them. `targeted` = `scheduled` + `queued` +
/// `delivered` + `failed` + `token_dead` + `expired` + `cancelled` +
/// `dropped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Devices in the audience with consent.
    pub targeted: i64,
    /// Devices in the audience skipped: no consent for the category.
    pub no_consent: i64,
    /// Waiting for their (local) time or the end of quiet hours.
    pub scheduled: i64,
    /// Due, not yet finished: waiting for the throttle, for fan-out, for
    /// the provider's answer, or for a retry.
    pub queued: i64,
    /// Handed to the provider at least once.
    pub sent: i64,
    /// Accepted by the provider.
    pub delivered: i64,
    pub failed: i64,
    pub token_dead: i64,
    /// Expired before they could be sent (throttle, quiet hours, retries).
    pub expired: i64,
    pub cancelled: i64,
    /// Queued, but fan-out made no delivery: the device was removed (or
    /// its token found dead) before its turn came.
    pub dropped: i64,
    /// Reported opened by the app (device receipts).
    pub opened: i64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.targeted += o.targeted;
        self.no_consent += o.no_consent;
        self.scheduled += o.scheduled;
        self.queued += o.queued;
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.failed += o.failed;
        self.token_dead += o.token_dead;
        self.expired += o.expired;
        self.cancelled += o.cancelled;
        self.dropped += o.dropped;
        self.opened += o.opened;
    }
}

#[derive(sqlx::FromRow)]
struct TargetCounts {
    platform: String,
    targeted: i64,
    no_consent: i64,
    scheduled: i64,
    waiting: i64,
    queued: i64,
    expired: i64,
    cancelled: i64,
    queued_last_minute: i64,
    last_due_at: Option<DateTime<Utc>>,
}

/// Counts a campaign's targets, deliveries, unsent notifications and
/// receipts (index scans over the campaign's rows), in one snapshot so a
/// target is never counted both as queued and as its delivery.
pub async fn progress(
    pool: &PgPool,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Progress, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(SNAPSHOT).execute(&mut *tx).await?;
    let targets: Vec<TargetCounts> = sqlx::query_as(TARGET_COUNTS)
        .bind(id)
        .bind(now)
        .bind(now - Duration::minutes(1))
        .fetch_all(&mut *tx)
        .await?;
    let deliveries: Vec<(String, String, i64, i64)> = sqlx::query_as(DELIVERY_COUNTS)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let unsent: Vec<(String, String, i64)> = sqlx::query_as(NOTIFICATION_COUNTS)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let opened: Vec<(String, i64)> = sqlx::query_as(OPENED).bind(id).fetch_all(&mut *tx).await?;
    tx.commit().await?;

    let mut progress = Progress::default();
    let mut last_due: Option<DateTime<Utc>> = None;
    let mut waiting_total = 0;
    for t in targets {
        let platform: Platform = t
            .platform
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let mut c = Counts {
            targeted: t.targeted,
            no_consent: t.no_consent,
            scheduled: t.scheduled,
            expired: t.expired,
            cancelled: t.cancelled,
            ..Counts::default()
        };
        // A queued target became a delivery, is still in the outbox, or
        // its notification ended without one (expired or cancelled before
        // fan-out); what is left of it was dropped at fan-out (the device
        // was removed meanwhile).
        let made: i64 = deliveries
            .iter()
            .filter(|d| d.0 == t.platform)
            .map(|d| d.2)
            .sum();
        let mut outbox = 0;
        let mut ended = 0;
        for (_, state, n) in unsent.iter().filter(|u| u.0 == t.platform) {
            match state.as_str() {
                "pending" => outbox += n,
                "expired" => c.expired += n,
                "cancelled" => c.cancelled += n,
                _ => c.dropped += n,
            }
            if state != "pending" {
                ended += n;
            }
        }
        c.dropped += (t.queued - made - outbox - ended).max(0);
        c.queued = t.waiting + outbox;
        for (_, state, n, sent) in deliveries.iter().filter(|d| d.0 == t.platform) {
            c.sent += sent;
            match state.as_str() {
                "pending" | "sending" => c.queued += n,
                "delivered" => c.delivered += n,
                "failed" => c.failed += n,
                "token_dead" => c.token_dead += n,
                "expired" => c.expired += n,
                "cancelled" => c.cancelled += n,
                _ => {}
            }
        }
        c.opened = opened
            .iter()
            .filter(|o| o.0 == t.platform)
            .map(|o| o.1)
            .sum();
        progress.per_minute += t.queued_last_minute;
        waiting_total += t.waiting + outbox;
        last_due = last_due.max(t.last_due_at);
        progress.total.add(&c);
        progress.by_platform.insert(platform, c);
    }
    progress.finished = progress.total.scheduled == 0 && progress.total.queued == 0;
    if !progress.finished {
        let by_rate = (progress.per_minute > 0)
            .then(|| now + Duration::milliseconds(waiting_total * 60_000 / progress.per_minute));
        progress.eta = match (by_rate, last_due) {
            (Some(r), Some(d)) => Some(r.max(d)),
            (r, d) => r.or(d),
        };
    }
    Ok(progress)
}

/// How much one pump step may do.
#[derive(Debug, Clone, Copy)]
pub struct PumpLimits {
    /// Targets turned into notifications per step, at most.
    pub batch: i64,
    /// A campaign's notifications waiting for fan-out, at most: the
    /// throttle's pace is kept by the outbox, not in it.
    pub backlog: i64,
    /// Device ids evaluated per statement while a campaign starts.
    pub evaluate_chunk: i64,
}

/// What one pump pass did, over every campaign with work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pumped {
    pub started: u64,
    pub evaluated: u64,
    pub queued: u64,
    pub notifications: u64,
    pub deferred: u64,
    pub expired: u64,
    pub completed: u64,
    /// Some campaign has more to do at once (its step was cut short by
    /// the batch, not by the throttle or the backlog).
    pub more: bool,
}

/// One pass over the campaigns with work at `now` (the clock is the
/// caller's, so tests can move it): each is locked for its step, or
/// skipped while another process holds it.
pub async fn pump(
    pool: &PgPool,
    ctx: &Context,
    limits: PumpLimits,
    now: DateTime<Utc>,
) -> Result<Pumped, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(ACTIVE).bind(now).fetch_all(pool).await?;
    let mut total = Pumped::default();
    for id in ids {
        let mut tx = pool.begin().await?;
        let Some(c): Option<Campaign> = sqlx::query_as(LOCK_ACTIVE)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            continue;
        };
        step(&mut tx, ctx, limits, &c, now, &mut total).await?;
        tx.commit().await?;
    }
    Ok(total)
}

#[tracing::instrument(name = "campaign_step", skip_all, fields(campaign = %c.id, state = %c.state))]
async fn step(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Context,
    limits: PumpLimits,
    c: &Campaign,
    now: DateTime<Utc>,
    total: &mut Pumped,
) -> Result<(), sqlx::Error> {
    let (mut evaluated_through, audience_max) = (c.evaluated_through, c.audience_max_device_id);
    let audience_max = if c.state == CampaignState::Scheduled {
        total.started += 1;
        evaluated_through = Some(0);
        tracing::info!(campaign = %c.id, name = %c.name, "campaign started: evaluating its audience");
        sqlx::query_scalar::<_, i64>(START)
            .bind(c.id)
            .bind(&c.app)
            .fetch_one(&mut **tx)
            .await?
    } else {
        audience_max.unwrap_or(0)
    };
    let mut evaluated_through = evaluated_through.unwrap_or(0);
    let (quiet_start, quiet_end) = ctx.quiet(&c.app, c.priority);
    if evaluated_through < audience_max {
        let upto = (evaluated_through + limits.evaluate_chunk).min(audience_max);
        let (send_at, local_date, local_time) = local_parts(c.when);
        bind_audience(
            sqlx::query(EVALUATE),
            &c.app,
            ctx,
            (evaluated_through, Some(upto)),
            &c.segment,
            c.user_list_id,
            c.category.as_deref(),
            now,
        )
        .bind(c.id)
        .bind(send_at)
        .bind(local_date)
        .bind(local_time)
        .bind(c.ttl_seconds)
        .bind(quiet_start)
        .bind(quiet_end)
        .execute(&mut **tx)
        .await?;
        sqlx::query(EVALUATED)
            .bind(c.id)
            .bind(upto)
            .execute(&mut **tx)
            .await?;
        evaluated_through = upto;
        total.evaluated += 1;
        total.more |= evaluated_through < audience_max;
    }

    // Only a throttle can hold targets back past their TTL by more than a
    // batch: without one, each step's own pick expires them a batch at a
    // time, and this statement would be one more index scan per step.
    if c.throttle_per_minute.is_some() {
        let expired = sqlx::query(EXPIRE)
            .bind(c.id)
            .bind(now)
            .bind(limits.batch)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        total.expired += expired;
        total.more |= expired as i64 == limits.batch;
    }

    let backlog: i64 = sqlx::query_scalar(BACKLOG)
        .bind(c.id)
        .fetch_one(&mut **tx)
        .await?;
    let room = (limits.backlog - backlog).max(0);
    let (allowance, pace) = allowance(c.throttle_per_minute, c.paced_until, now, limits.batch);
    let limit = allowance.min(room);
    if limit > 0 {
        let (queued, notifications, deferred, expired): (i64, i64, i64, i64) = sqlx::query_as(PUMP)
            .bind(c.id)
            .bind(now)
            .bind(limit)
            .bind(quiet_start)
            .bind(quiet_end)
            .bind(c.content.digest())
            .bind(Uuid::new_v4().simple().to_string())
            .fetch_one(&mut **tx)
            .await?;
        if let Some(pace) = pace {
            sqlx::query(PACED)
                .bind(c.id)
                .bind(pace.advance(queued))
                .execute(&mut **tx)
                .await?;
        }
        total.queued += queued as u64;
        total.notifications += notifications as u64;
        total.deferred += deferred as u64;
        total.expired += expired as u64;
        total.more |= queued + deferred + expired == limit && limit == limits.batch;
        if queued > 0 {
            tracing::debug!(queued, notifications, deferred, expired, "campaign step");
        }
    }
    if evaluated_through >= audience_max {
        let done: Option<Uuid> = sqlx::query_scalar(COMPLETE)
            .bind(c.id)
            .fetch_optional(&mut **tx)
            .await?;
        if done.is_some() {
            total.completed += 1;
            tracing::info!(campaign = %c.id, name = %c.name, "campaign completed: every target handed over");
        }
    }
    Ok(())
}

/// The throttle as a GCRA: every device queued moves the campaign's pace
/// `60 / throttle` seconds on; a step may queue what brings the pace up to
/// one second (or one device) ahead of now.
#[derive(Debug, Clone, Copy)]
struct Pace {
    from: DateTime<Utc>,
    per_device: Duration,
}

impl Pace {
    fn advance(self, devices: i64) -> DateTime<Utc> {
        self.from + self.per_device * devices as i32
    }
}

fn allowance(
    throttle: Option<i32>,
    paced_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    batch: i64,
) -> (i64, Option<Pace>) {
    let Some(throttle) = throttle else {
        return (batch, None);
    };
    let per_device = Duration::microseconds(60_000_000 / i64::from(throttle));
    let burst = per_device.max(Duration::seconds(1));
    let from = paced_until.unwrap_or(now).max(now);
    let ahead = now + burst - from;
    let n = (ahead.num_microseconds().unwrap_or(0)
        / per_device.num_microseconds().unwrap_or(1).max(1))
    .clamp(0, batch);
    (n, Some(Pace { from, per_device }))
}

/// An uploaded user list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UserList {
    pub id: Uuid,
    pub app: String,
    pub name: String,
    pub users: i64,
    pub created_at: DateTime<Utc>,
}

pub async fn user_list(
    pool: &PgPool,
    id: Uuid,
    apps: Option<&[String]>,
) -> Result<Option<UserList>, sqlx::Error> {
    sqlx::query_as(USER_LIST_GET)
        .bind(id)
        .bind(apps)
        .fetch_optional(pool)
        .await
}

/// Streams a CSV of user ids (one per line; a first line `user_id` is a
/// header) into a new user list of the app, through COPY: millions of ids
/// never sit in this process's memory. Duplicates and blank lines are
/// dropped. The list exists only if the whole upload went in.
pub async fn upload_user_list<S, E>(
    pool: &PgPool,
    app: &str,
    name: &str,
    mut body: S,
) -> Result<UserList, CampaignError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
        return Err(CampaignError::BadName);
    }
    let mut tx = pool.begin().await?;
    let (id, created_at): (Uuid, DateTime<Utc>) = sqlx::query_as(USER_LIST_INSERT)
        .bind(app)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(UPLOAD_TABLE).execute(&mut *tx).await?;
    let mut copy = tx.copy_in_raw(UPLOAD_COPY).await?;
    // The first line is held until it is whole (a stream may cut it
    // anywhere) to tell a header from a user id.
    let mut head = Some(BytesMut::new());
    loop {
        let (chunk, last) = match body.next().await {
            Some(chunk) => (
                chunk.map_err(|e| CampaignError::BadUpload(format!("the upload failed: {e}")))?,
                false,
            ),
            None => (Bytes::new(), true),
        };
        let chunk = match head.take() {
            Some(mut h) => {
                h.extend_from_slice(&chunk);
                if !last && !h.contains(&b'\n') && h.len() < MAX_FIRST_LINE {
                    head = Some(h);
                    continue;
                }
                without_header(h.freeze())
            }
            None => chunk,
        };
        if chunk.contains(&0) {
            let _ = copy.abort("NUL in upload").await;
            return Err(CampaignError::BadUpload("it contains a NUL byte".into()));
        }
        if !chunk.is_empty() {
            if let Err(e) = copy.send(chunk).await {
                return Err(upload_error(e));
            }
        }
        if last {
            break;
        }
    }
    copy.finish().await.map_err(upload_error)?;
    sqlx::query(UPLOAD_MEMBERS)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let users: i64 = sqlx::query_scalar(USER_LIST_COUNT)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(UserList {
        id,
        app: app.to_owned(),
        name: name.to_owned(),
        users,
        created_at,
    })
}

/// The longest first line held back to look for a header; a longer one
/// is no header.
const MAX_FIRST_LINE: usize = 64 * 1024;

/// The upload without its header line (`user_id`, in any case, quoted or
/// not) and without the byte order mark spreadsheets put first.
fn without_header(upload: Bytes) -> Bytes {
    let upload = match upload.strip_prefix("\u{feff}".as_bytes()) {
        Some(_) => upload.slice(3..),
        None => upload,
    };
    let end = upload
        .iter()
        .position(|b| *b == b'\n')
        .map_or(upload.len(), |n| n + 1);
    let line = String::from_utf8_lossy(&upload[..end]);
    let name = line.trim().trim_matches('"').trim();
    if name.eq_ignore_ascii_case("user_id") {
        upload.slice(end..)
    } else {
        upload
    }
}

/// A COPY refused by PostgreSQL is the upload's fault (a second column,
/// bad quoting, invalid UTF-8); anything else is the database's.
fn upload_error(e: sqlx::Error) -> CampaignError {
    match &e {
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("22") || c == "42601") =>
        {
            CampaignError::BadUpload(db.message().to_owned())
        }
        _ => CampaignError::Database(e),
    }
}

/// Deletes a user list and its members, unless a campaign uses it: for a
/// list uploaded for one request (a preview, or a campaign that was then
/// refused) that nothing needs afterwards.
pub async fn delete_user_list(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(USER_LIST_DELETE).bind(id).execute(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_throttle_allows_one_second_ahead() {
        let now = t("2026-01-01T00:00:00Z");
        // 600 a minute: 10 a second, a step may take a second's worth.
        let (n, pace) = allowance(Some(600), None, now, 1000);
        assert_eq!(n, 10);
        let pace = pace.unwrap().advance(n);
        assert_eq!(pace, now + Duration::seconds(1));
        // At once again: nothing left.
        assert_eq!(allowance(Some(600), Some(pace), now, 1000).0, 0);
        // 100 ms later: one more.
        let later = now + Duration::milliseconds(100);
        assert_eq!(allowance(Some(600), Some(pace), later, 1000).0, 1);
        // Idle for an hour: still only a second's burst.
        let hour = now + Duration::hours(1);
        assert_eq!(allowance(Some(600), Some(pace), hour, 1000).0, 10);
        // The batch caps it.
        assert_eq!(allowance(Some(600_000), None, now, 500).0, 500);
        assert_eq!(allowance(None, None, now, 500).0, 500);
    }

    #[test]
    fn a_slow_throttle_lets_one_device_through_at_a_time() {
        let now = t("2026-01-01T00:00:00Z");
        // 1 a minute: one now, the next a minute later.
        let (n, pace) = allowance(Some(1), None, now, 1000);
        assert_eq!(n, 1);
        let pace = pace.unwrap().advance(1);
        assert_eq!(
            allowance(Some(1), Some(pace), now + Duration::seconds(59), 1000).0,
            0
        );
        assert_eq!(
            allowance(Some(1), Some(pace), now + Duration::seconds(60), 1000).0,
            1
        );
    }

    #[test]
    fn schedules() {
        let now = t("2026-06-01T12:00:00Z");
        assert_eq!(Schedule::default().resolve(now).unwrap(), When::At(now));
        let past = Schedule {
            at: Some(now - Duration::hours(1)),
            ..Schedule::default()
        };
        assert!(matches!(past.resolve(now), Err(CampaignError::InPast(_))));
        let local = Schedule {
            local_time: Some("09:00".into()),
            date: Some("2026-06-02".parse().unwrap()),
            ..Schedule::default()
        };
        let when = local.resolve(now).unwrap();
        // 09:00 on June 2 comes first at UTC+14: 19:00 UTC on June 1.
        assert_eq!(when.starts_at(now), t("2026-06-01T19:00:00Z"));
        // 09:00 on June 1 has passed in UTC+14 but not in UTC-12 (21:00 UTC).
        let today = Schedule {
            date: Some("2026-06-01".parse().unwrap()),
            ..local.clone()
        };
        assert_eq!(today.resolve(now).unwrap().starts_at(now), now);
        let gone = Schedule {
            date: Some("2026-05-30".parse().unwrap()),
            ..local
        };
        assert!(matches!(gone.resolve(now), Err(CampaignError::InPast(_))));
        let bad = Schedule {
            local_time: Some("9 am".into()),
            date: Some("2026-06-02".parse().unwrap()),
            ..Schedule::default()
        };
        assert!(matches!(
            bad.resolve(now),
            Err(CampaignError::BadSchedule {
                field: "local_time",
                ..
            })
        ));
    }

    #[test]
    fn the_ttl_must_outlast_the_throttle() {
        assert!(check_pace(1000, 100, 600).is_ok());
        let e = check_pace(1000, 100, 599).unwrap_err();
        assert!(e.to_string().contains("take 600 s"), "{e}");
        assert!(e.to_string().contains("at least 101 a minute"), "{e}");
    }

    #[test]
    fn segments_refuse_what_matches_nothing() {
        let s: Result<Segment, _> =
            serde_json::from_value(serde_json::json!({"platform": ["ios"]}));
        assert!(s
            .unwrap_err()
            .to_string()
            .contains("unknown field `platform`"));
        let empty = Segment {
            tags_any: Some(vec![]),
            ..Segment::default()
        };
        assert!(matches!(
            empty.check(),
            Err(CampaignError::BadSegment {
                field: "tags_any",
                ..
            })
        ));
        let both = Segment {
            all: true,
            locales: Some(vec!["de".into()]),
            ..Segment::default()
        };
        assert!(matches!(both.check(), Err(CampaignError::AllWithFilters)));
        let version = Segment {
            app_version: Some(VersionRange {
                min: Some("five".into()),
                max: None,
            }),
            ..Segment::default()
        };
        assert!(version.check().is_err());
    }
}

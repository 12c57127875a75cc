//! The outbox: notifications written by producers, and the fan-out that
//! turns each due notification into one delivery per active device.
//!
//! Producers `INSERT` into `pushrelay.notifications` inside their own
//! transactions (see the README for the exact statement); [`insert_many`]
//! is the same insert for the HTTP API, the CLI and tests, a whole batch
//! in one statement. Table constraints reject malformed rows at insert
//! time, inside the producer's transaction, with a constraint name that
//! says what is wrong; [`check`] runs the same rules in Rust first, so one
//! bad item of a batch gets its own error naming the field instead of
//! failing the statement for all.
//!
//! Fan-out ([`fan_out`]) is one statement per batch and priority: it locks
//! due notifications with `FOR UPDATE SKIP LOCKED`, inserts their
//! deliveries already leased to the calling process (their first try needs
//! no separate claim) and settles the notifications. If the process dies
//! mid-batch, PostgreSQL rolls the statement back and releases the rows, so
//! another process fans the batch out and nothing is lost or doubled.
//!
//! [`cancel`] stops what has not been sent; [`list_for_user`] pages through
//! a user's notifications newest first.

use std::collections::HashMap;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::content::{Options, OptionsError};
use crate::model::{Environment, NotificationState, Platform, Priority};

const INSERT_MANY: &str = include_str!("notifications/insert_many.sql");
const EXISTING: &str = include_str!("notifications/existing.sql");
const BY_IDEMPOTENCY_KEY: &str = include_str!("notifications/by_idempotency_key.sql");
const CANCEL_NOTIFICATION: &str = include_str!("notifications/cancel_notification.sql");
const CANCEL_DELIVERIES: &str = include_str!("notifications/cancel_deliveries.sql");
const CANCEL_SUMMARY: &str = include_str!("notifications/cancel_summary.sql");
const LIST_FOR_USER: &str = include_str!("notifications/list_for_user.sql");
const FAN_OUT: &str = include_str!("notifications/fan_out.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("notifications/insert_many", INSERT_MANY),
    ("notifications/existing", EXISTING),
    ("notifications/by_idempotency_key", BY_IDEMPOTENCY_KEY),
    ("notifications/cancel_notification", CANCEL_NOTIFICATION),
    ("notifications/cancel_deliveries", CANCEL_DELIVERIES),
    ("notifications/cancel_summary", CANCEL_SUMMARY),
    ("notifications/list_for_user", LIST_FOR_USER),
    ("notifications/fan_out", FAN_OUT),
];

/// The limits the table's constraints enforce (migrations 0001, 0003).
pub const MAX_DATA_BYTES: usize = 4096;
pub const MAX_COLLAPSE_KEY_BYTES: usize = 64;
pub const MAX_TTL_SECONDS: i32 = 2_419_200;
/// Not a table constraint: a longer key would not fit the unique index's
/// row limit (about 2,700 bytes) and is surely a mistake.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("unknown app {0:?}; configured apps are: {1}")]
    UnknownApp(String, String),
    #[error("data must be a JSON object like {{\"amount\": \"12.00\"}}: {0}")]
    BadData(String),
    #[error("data is {0} bytes as stored; at most {MAX_DATA_BYTES} are allowed (the providers' payload limit)")]
    DataTooLarge(usize),
    #[error("data key {0:?} is reserved by FCM (from, message_type, notification, and keys starting with google or gcm are); rename it")]
    ReservedDataKey(String),
    #[error("give either a user id or device ids as the recipient, not both or neither")]
    BadRecipient,
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("give a template name or an inline body (only a data-only message may have neither)")]
    NoContent,
    #[error("collapse_key is {0} bytes; at most {MAX_COLLAPSE_KEY_BYTES} are allowed (APNs' apns-collapse-id limit)")]
    CollapseKeyTooLong(usize),
    #[error(
        "ttl_seconds must be between 0 (now or never) and {MAX_TTL_SECONDS} (28 days); got {0}"
    )]
    BadTtl(i32),
    #[error("idempotency_key is {0} bytes; at most {MAX_IDEMPOTENCY_KEY_BYTES} are allowed")]
    IdempotencyKeyTooLong(usize),
    #[error("{0} contains a NUL character (\\u0000), which cannot be stored; remove it")]
    NulCharacter(&'static str),
    #[error(transparent)]
    BadOptions(#[from] crate::content::OptionsError),
    #[error("the notification was rejected by the database: {0}")]
    Rejected(String),
    #[error("{0:?} is not a cursor this API returned; start again without one")]
    BadCursor(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl OutboxError {
    /// The request field the problem is in, when it is one field's.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            OutboxError::UnknownApp(..) => "app",
            OutboxError::BadData(_)
            | OutboxError::DataTooLarge(_)
            | OutboxError::ReservedDataKey(_) => "data",
            OutboxError::BadRecipient => "user_id",
            OutboxError::Empty(f) | OutboxError::NulCharacter(f) => f,
            OutboxError::NoContent => "body",
            OutboxError::CollapseKeyTooLong(_) => "collapse_key",
            OutboxError::BadTtl(_) => "ttl_seconds",
            OutboxError::IdempotencyKeyTooLong(_) => "idempotency_key",
            OutboxError::BadOptions(_) => "options",
            OutboxError::BadCursor(_) => "cursor",
            OutboxError::Rejected(_) | OutboxError::Database(_) => return None,
        })
    }
}

/// A notification as a producer writes it.
#[derive(Debug, Clone, Default)]
pub struct NewNotification {
    pub app: String,
    pub user_id: Option<String>,
    pub device_ids: Option<Vec<i64>>,
    pub template: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub data: serde_json::Value,
    pub priority: Option<Priority>,
    pub collapse_key: Option<String>,
    pub ttl_seconds: Option<i32>,
    pub send_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    /// Content options (`content::Options` as a JSON object); `null` for none.
    pub options: serde_json::Value,
}

/// One notification to insert, with the digest of the API request it came
/// from (`None` for the CLI and library callers).
#[derive(Debug, Clone)]
pub struct Request {
    pub notification: NewNotification,
    pub request_sha256: Option<[u8; 32]>,
}

/// What became of one notification handed to [`insert_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Inserted {
        id: Uuid,
        created_at: DateTime<Utc>,
        send_at: DateTime<Utc>,
    },
    /// Its idempotency key was taken for the app. `same_request`: the
    /// existing row came from the same request (or from a producer's SQL
    /// insert, which has no digest), so this is a repeat, not a conflict.
    Existing {
        id: Uuid,
        same_request: bool,
        state: NotificationState,
        created_at: DateTime<Utc>,
        send_at: DateTime<Utc>,
    },
}

impl Enqueued {
    pub fn id(&self) -> Uuid {
        match *self {
            Enqueued::Inserted { id, .. } | Enqueued::Existing { id, .. } => id,
        }
    }
}

/// Checks a notification against every rule of the table's constraints
/// and content trigger, naming the field at fault. Rows inserted with a
/// request digest (the HTTP API's) skip the trigger (migration 0007): for
/// them this is the only check of data keys and options, so it must refuse
/// everything the trigger refuses (tests/api_content_check.rs). Returns the `data` and
/// `options` to store (`null` becomes `{}`).
pub fn check(n: &NewNotification) -> Result<(serde_json::Value, serde_json::Value), OutboxError> {
    for (field, value) in [
        ("app", Some(n.app.as_str())),
        ("user_id", n.user_id.as_deref()),
        ("template", n.template.as_deref()),
        ("idempotency_key", n.idempotency_key.as_deref()),
    ] {
        if value == Some("") {
            return Err(OutboxError::Empty(field));
        }
    }
    for (field, value) in [
        ("app", Some(n.app.as_str())),
        ("user_id", n.user_id.as_deref()),
        ("template", n.template.as_deref()),
        ("title", n.title.as_deref()),
        ("body", n.body.as_deref()),
        ("collapse_key", n.collapse_key.as_deref()),
        ("idempotency_key", n.idempotency_key.as_deref()),
    ] {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(OutboxError::NulCharacter(field));
        }
    }
    if n.user_id.is_some() == n.device_ids.is_some() {
        return Err(OutboxError::BadRecipient);
    }
    if n.device_ids.as_ref().is_some_and(Vec::is_empty) {
        return Err(OutboxError::Empty("device_ids"));
    }
    let options = Options::from_json(&n.options)?;
    if n.template.is_none() && n.body.is_none() && !options.is_data_only() {
        return Err(OutboxError::NoContent);
    }
    let data = if n.data.is_null() {
        serde_json::json!({})
    } else {
        n.data.clone()
    };
    let Some(map) = data.as_object() else {
        return Err(OutboxError::BadData(format!("got {data}")));
    };
    if let Some(k) = map.keys().find(|k| reserved_data_key(k)) {
        return Err(OutboxError::ReservedDataKey(k.clone()));
    }
    if has_nul(&data) {
        return Err(OutboxError::NulCharacter("data"));
    }
    let size = jsonb_text_len(&data);
    if size > MAX_DATA_BYTES {
        return Err(OutboxError::DataTooLarge(size));
    }
    if let Some(c) = &n.collapse_key {
        if c.len() > MAX_COLLAPSE_KEY_BYTES {
            return Err(OutboxError::CollapseKeyTooLong(c.len()));
        }
    }
    if let Some(t) = n.ttl_seconds {
        if !(0..=MAX_TTL_SECONDS).contains(&t) {
            return Err(OutboxError::BadTtl(t));
        }
    }
    if let Some(k) = &n.idempotency_key {
        if k.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            return Err(OutboxError::IdempotencyKeyTooLong(k.len()));
        }
    }
    let options = if n.options.is_null() {
        serde_json::json!({})
    } else {
        n.options.clone()
    };
    Ok((data, options))
}

/// FCM: "data ... must not contain reserved words" (the trigger's rule).
/// Lowercased as PostgreSQL's `lower()` does it: one character for one,
/// so the dotted capital I (U+0130) is a plain `i` (Rust's `to_lowercase`
/// gives it a combining dot, and "NOTİFİCATİON" would get past).
fn reserved_data_key(k: &str) -> bool {
    let k: String = k
        .chars()
        .map(|c| match c {
            '\u{130}' => 'i',
            c => c.to_lowercase().next().unwrap_or(c),
        })
        .collect();
    matches!(k.as_str(), "from" | "message_type" | "notification")
        || k.starts_with("google")
        || k.starts_with("gcm")
}

/// PostgreSQL's text and jsonb refuse NUL characters.
pub(crate) fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The length of `v` as `jsonb::text` prints it (`{"a": 1, "b": [1, 2]}`),
/// which is what the size constraint measures. Numbers print as serde_json
/// prints them; where PostgreSQL's numeric differs (`1e3`), the
/// database's own check still has the last word.
fn jsonb_text_len(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    let string_len = |s: &str| serde_json::to_string(s).map_or(0, |j| j.len());
    match v {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!b),
        Value::Number(n) => n.to_string().len(),
        Value::String(s) => string_len(s),
        Value::Array(a) => {
            2 + a.iter().map(jsonb_text_len).sum::<usize>() + 2 * a.len().saturating_sub(1)
        }
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, v)| string_len(k) + 2 + jsonb_text_len(v))
                .sum::<usize>()
                + 2 * o.len().saturating_sub(1)
        }
    }
}

/// Inserts a notification; with an idempotency key already used for the app,
/// returns the existing notification's id instead of inserting a second.
pub async fn enqueue(pool: &PgPool, n: &NewNotification) -> Result<Uuid, OutboxError> {
    let request = Request {
        notification: n.clone(),
        request_sha256: None,
    };
    let mut results = insert_many(pool, std::slice::from_ref(&request)).await?;
    Ok(results.pop().expect("one result per request")?.id())
}

/// The columns of a batch, as the insert binds them.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<Uuid>,
    app: Vec<&'a str>,
    user_id: Vec<Option<&'a str>>,
    device_ids: Vec<Option<String>>,
    template: Vec<Option<&'a str>>,
    title: Vec<Option<&'a str>>,
    body: Vec<Option<&'a str>>,
    data: Vec<serde_json::Value>,
    priority: Vec<Option<&'static str>>,
    collapse_key: Vec<Option<&'a str>>,
    ttl_seconds: Vec<Option<i32>>,
    send_at: Vec<Option<DateTime<Utc>>>,
    idempotency_key: Vec<Option<&'a str>>,
    options: Vec<serde_json::Value>,
    request_sha256: Vec<Option<Vec<u8>>>,
}

impl<'a> Columns<'a> {
    fn push(
        &mut self,
        id: Uuid,
        r: &'a Request,
        data: serde_json::Value,
        options: serde_json::Value,
    ) {
        let n = &r.notification;
        self.id.push(id);
        self.app.push(&n.app);
        self.user_id.push(n.user_id.as_deref());
        self.device_ids.push(n.device_ids.as_ref().map(|ids| {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!("{{{}}}", list.join(","))
        }));
        self.template.push(n.template.as_deref());
        self.title.push(n.title.as_deref());
        self.body.push(n.body.as_deref());
        self.data.push(data);
        self.priority.push(n.priority.map(Priority::as_str));
        self.collapse_key.push(n.collapse_key.as_deref());
        self.ttl_seconds.push(n.ttl_seconds);
        self.send_at.push(n.send_at);
        self.idempotency_key.push(n.idempotency_key.as_deref());
        self.options.push(options);
        self.request_sha256
            .push(r.request_sha256.map(|d| d.to_vec()));
    }

    /// Row `i` alone, for inserting items one by one.
    fn row(&self, i: usize) -> Columns<'a> {
        Columns {
            id: vec![self.id[i]],
            app: vec![self.app[i]],
            user_id: vec![self.user_id[i]],
            device_ids: vec![self.device_ids[i].clone()],
            template: vec![self.template[i]],
            title: vec![self.title[i]],
            body: vec![self.body[i]],
            data: vec![self.data[i].clone()],
            priority: vec![self.priority[i]],
            collapse_key: vec![self.collapse_key[i]],
            ttl_seconds: vec![self.ttl_seconds[i]],
            send_at: vec![self.send_at[i]],
            idempotency_key: vec![self.idempotency_key[i]],
            options: vec![self.options[i].clone()],
            request_sha256: vec![self.request_sha256[i].clone()],
        }
    }

    async fn insert(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)>, sqlx::Error> {
        sqlx::query_as(INSERT_MANY)
            .bind(&self.id)
            .bind(&self.app)
            .bind(&self.user_id)
            .bind(&self.device_ids)
            .bind(&self.template)
            .bind(&self.title)
            .bind(&self.body)
            .bind(&self.data)
            .bind(&self.priority)
            .bind(&self.collapse_key)
            .bind(&self.ttl_seconds)
            .bind(&self.send_at)
            .bind(&self.idempotency_key)
            .bind(&self.options)
            .bind(&self.request_sha256)
            .fetch_all(conn)
            .await
    }
}

/// The notification holding an idempotency key.
#[derive(sqlx::FromRow)]
struct Holder {
    app: String,
    idempotency_key: String,
    id: Uuid,
    request_sha256: Option<Vec<u8>>,
    state: NotificationState,
    created_at: DateTime<Utc>,
    send_at: DateTime<Utc>,
}

/// A refusal by the database that concerns the rows (a constraint, a value
/// it cannot store), as opposed to a connection or server problem.
fn is_row_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
        _ => false,
    }
}

fn rejected(e: sqlx::Error) -> OutboxError {
    match e {
        sqlx::Error::Database(db) => OutboxError::Rejected(match db.constraint() {
            Some(c) => format!("{} (constraint {c})", db.message()),
            None => db.message().to_owned(),
        }),
        other => OutboxError::Database(other),
    }
}

/// Inserts `requests` in one statement (so: atomically), returning per
/// request (same order) what became of it or why it was refused.
///
/// Each request is checked first ([`check`]); those that pass are inserted
/// together, ordered by (app, idempotency key) so that concurrent batches
/// sharing keys wait for each other instead of deadlocking. If the
/// statement still fails on a row (a rule [`check`] does not know), the
/// rows are inserted one by one in one transaction, each under its own
/// savepoint, so every request gets its own answer. Requests whose idempotency key is taken
/// (by an earlier notification, or an earlier request of this batch) are
/// looked up with one more statement. `Err` only for a database that
/// cannot be reached or fails as a whole.
#[tracing::instrument(skip_all, fields(requests = requests.len(), inserted))]
pub async fn insert_many(
    pool: &PgPool,
    requests: &[Request],
) -> Result<Vec<Result<Enqueued, OutboxError>>, sqlx::Error> {
    let mut results: Vec<Option<Result<Enqueued, OutboxError>>> =
        (0..requests.len()).map(|_| None).collect();
    let mut valid: Vec<(usize, serde_json::Value, serde_json::Value)> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        match check(&r.notification) {
            Ok((data, options)) => valid.push((i, data, options)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    valid.sort_by(|a, b| {
        let key = |i: usize| {
            let n = &requests[i].notification;
            (n.app.as_str(), n.idempotency_key.as_deref())
        };
        key(a.0).cmp(&key(b.0))
    });
    let mut columns = Columns::default();
    let mut index_of: HashMap<Uuid, usize> = HashMap::with_capacity(valid.len());
    for (i, data, options) in valid {
        let id = Uuid::now_v7();
        index_of.insert(id, i);
        columns.push(id, &requests[i], data, options);
    }

    if !columns.id.is_empty() {
        // One statement is atomic on its own: no transaction (and its two
        // extra round trips) unless rows must be tried one by one.
        let mut conn = pool.acquire().await?;
        let mut inserted = Vec::new();
        match columns.insert(&mut conn).await {
            Ok(rows) => inserted = rows,
            Err(e) if is_row_error(&e) => {
                tracing::debug!(error = %e, "a batch insert failed on a row; inserting one by one");
                let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
                for k in 0..columns.id.len() {
                    let one = columns.row(k);
                    let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
                    match one.insert(&mut savepoint).await {
                        Ok(rows) => {
                            savepoint.commit().await?;
                            inserted.extend(rows);
                        }
                        Err(e) if is_row_error(&e) => {
                            savepoint.rollback().await?;
                            results[index_of[&one.id[0]]] = Some(Err(rejected(e)));
                        }
                        Err(e) => return Err(e),
                    }
                }
                tx.commit().await?;
            }
            Err(e) => return Err(e),
        }
        tracing::Span::current().record("inserted", inserted.len());
        for (id, created_at, send_at) in inserted {
            results[index_of[&id]] = Some(Ok(Enqueued::Inserted {
                id,
                created_at,
                send_at,
            }));
        }

        // The rest met a taken idempotency key.
        let taken: Vec<usize> = columns
            .id
            .iter()
            .map(|id| index_of[id])
            .filter(|&i| results[i].is_none())
            .collect();
        if !taken.is_empty() {
            let apps: Vec<&str> = taken
                .iter()
                .map(|&i| requests[i].notification.app.as_str())
                .collect();
            let keys: Vec<Option<&str>> = taken
                .iter()
                .map(|&i| requests[i].notification.idempotency_key.as_deref())
                .collect();
            let rows: Vec<Holder> = sqlx::query_as(EXISTING)
                .bind(&apps)
                .bind(&keys)
                .fetch_all(&mut *conn)
                .await?;
            let existing: HashMap<(&str, &str), &Holder> = rows
                .iter()
                .map(|h| ((h.app.as_str(), h.idempotency_key.as_str()), h))
                .collect();
            for i in taken {
                let r = &requests[i];
                let key = (
                    r.notification.app.as_str(),
                    r.notification
                        .idempotency_key
                        .as_deref()
                        .unwrap_or_default(),
                );
                results[i] = Some(match existing.get(&key) {
                    Some(h) => Ok(Enqueued::Existing {
                        id: h.id,
                        same_request: match (&h.request_sha256, r.request_sha256) {
                            (Some(stored), Some(ours)) => stored.as_slice() == ours.as_slice(),
                            _ => true,
                        },
                        state: h.state,
                        created_at: h.created_at,
                        send_at: h.send_at,
                    }),
                    // Deleted between the insert and the lookup (retention).
                    None => Err(OutboxError::Rejected(
                        "the notification holding this idempotency key was removed while this request ran; send it again".into(),
                    )),
                });
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every request has a result"))
        .collect())
}

/// The id of the notification an app enqueued with `key`, if any.
pub async fn by_idempotency_key(
    pool: &PgPool,
    app: &str,
    key: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(BY_IDEMPOTENCY_KEY)
        .bind(app)
        .bind(key)
        .fetch_optional(pool)
        .await
}

/// What a cancellation stopped, as it stands after the call (a repeated
/// cancel reports the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Cancellation {
    pub id: Uuid,
    /// The notification's state: `cancelled` if it had not been fanned out.
    pub state: NotificationState,
    pub cancelled_at: DateTime<Utc>,
    /// Deliveries that will never be sent.
    pub cancelled_deliveries: i64,
    /// Deliveries whose try was already on its way to the provider: it
    /// cannot be recalled, but will not be retried.
    pub in_flight: i64,
    /// Deliveries that already had their outcome (delivered, failed, ...).
    pub finished: i64,
}

/// Cancels a notification: not fanned out yet, it never will be; its
/// deliveries waiting for a (re)try are cancelled; those being sent finish
/// their try and are not retried. `None` when there is no such
/// notification (of `apps`, `None`: any app). Three statements in one transaction rather than one: the
/// first takes the notification's row lock, waiting for a fan-out that
/// holds it, so that the second (with a fresh snapshot) sees the
/// deliveries that fan-out created.
pub async fn cancel(
    pool: &PgPool,
    id: Uuid,
    apps: Option<&[String]>,
) -> Result<Option<Cancellation>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let found: Option<Uuid> = sqlx::query_scalar(CANCEL_NOTIFICATION)
        .bind(id)
        .bind(apps)
        .fetch_optional(&mut *tx)
        .await?;
    if found.is_none() {
        return Ok(None);
    }
    sqlx::query(CANCEL_DELIVERIES)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let summary: Cancellation = sqlx::query_as(CANCEL_SUMMARY)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(summary))
}

/// A position in a user's notifications: the last item of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// Opaque to clients: URL-safe base64 of the microsecond timestamp and
    /// the id (PostgreSQL keeps microseconds, so nothing is lost).
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(&self.created_at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(self.id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(s: &str) -> Result<Cursor, OutboxError> {
        let bad = || OutboxError::BadCursor(s.chars().take(64).collect());
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let (micros, id) = bytes.split_at_checked(8).ok_or_else(bad)?;
        let micros = i64::from_be_bytes(micros.try_into().map_err(|_| bad())?);
        let id = Uuid::from_slice(id).map_err(|_| bad())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        Ok(Cursor { created_at, id })
    }
}

/// One line of a user's notification list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UserNotification {
    pub id: Uuid,
    pub app: String,
    pub state: NotificationState,
    pub priority: Priority,
    pub template: Option<String>,
    pub title: Option<String>,
    pub created_at: DateTime<Utc>,
    pub send_at: DateTime<Utc>,
    /// How many of its deliveries are in each state (`{"delivered": 2}`).
    pub deliveries: serde_json::Value,
}

/// One page of a user's notifications, newest first, after `cursor`, of
/// `apps` (`None`: every app); the cursor of the next page if there is one.
pub async fn list_for_user(
    pool: &PgPool,
    user_id: &str,
    apps: Option<&[String]>,
    cursor: Option<Cursor>,
    limit: u32,
) -> Result<(Vec<UserNotification>, Option<Cursor>), sqlx::Error> {
    let mut rows: Vec<UserNotification> = sqlx::query_as(LIST_FOR_USER)
        .bind(user_id)
        .bind(apps)
        .bind(cursor.map(|c| c.created_at))
        .bind(cursor.map(|c| c.id))
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| Cursor {
            created_at: r.created_at,
            id: r.id,
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// Which apps exist and which platforms each one sends to, as fan-out
/// needs them: a device on a platform its app has no provider for gets no
/// delivery (it could never be sent).
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub apps: Vec<String>,
    /// `app/platform` pairs.
    pub pairs: Vec<String>,
}

/// What every delivery of one notification shares.
#[derive(Debug, sqlx::FromRow)]
pub struct Content {
    /// The notification's id.
    pub id: Uuid,
    pub app: String,
    pub priority: Priority,
    pub template: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub data: serde_json::Value,
    pub collapse_key: Option<String>,
    #[sqlx(try_from = "serde_json::Value")]
    pub options: StoredOptions,
    /// `ttl_seconds = 0`: one try, never retried, sent with a zero expiry.
    pub now_or_never: bool,
    pub expires_at: DateTime<Utc>,
}

/// A notification's content options, parsed once when its row is read:
/// one [`Content`] serves every delivery of the notification. `None` when
/// the notification row is gone.
#[derive(Debug, Clone)]
pub struct StoredOptions(pub Option<Result<Options, OptionsError>>);

impl From<serde_json::Value> for StoredOptions {
    fn from(v: serde_json::Value) -> StoredOptions {
        StoredOptions((!v.is_null()).then(|| Options::from_json(&v)))
    }
}

/// One fanned-out notification: its content, and per delivery (same index
/// in each vector) the delivery and its device.
#[derive(Debug, sqlx::FromRow)]
pub struct FannedOut {
    #[sqlx(flatten)]
    pub content: Content,
    /// When the notification was enqueued (for the enqueue→accepted histogram).
    pub created_at: DateTime<Utc>,
    pub delivery_ids: Vec<i64>,
    pub device_ids: Vec<i64>,
    pub platforms: Vec<Platform>,
    pub tokens: Vec<String>,
    pub environments: Vec<Environment>,
    pub locales: Vec<String>,
    /// SNS endpoints (`None` for devices without one).
    pub endpoint_arns: Vec<Option<String>>,
    pub endpoints_stale: Vec<bool>,
}

/// Claims up to `batch` due notifications of `priority` and fans them out
/// in one statement, leasing the new deliveries to `worker`. Notifications
/// for unknown apps fail with a reason; expired ones are marked expired
/// and create no deliveries; invalidated devices, and devices on a platform
/// their app does not send to, are skipped. Returns every claimed
/// notification (those without deliveries too).
#[tracing::instrument(skip(pool, routes), fields(claimed, deliveries))]
pub async fn fan_out(
    pool: &PgPool,
    priority: Priority,
    batch: i64,
    routes: &Routes,
    worker: &str,
) -> Result<Vec<FannedOut>, sqlx::Error> {
    let rows: Vec<FannedOut> = sqlx::query_as(FAN_OUT)
        .bind(batch)
        .bind(&routes.apps)
        .bind(&routes.pairs)
        .bind(worker)
        .bind(priority)
        .fetch_all(pool)
        .await?;
    tracing::Span::current()
        .record("claimed", rows.len())
        .record(
            "deliveries",
            rows.iter().map(|r| r.delivery_ids.len()).sum::<usize>(),
        );
    Ok(rows)
}

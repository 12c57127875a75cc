//! Notifications over HTTP: enqueue one or a batch, read the support view,
//! find one by its idempotency key, cancel, and page through a user's.
//!
//! Single enqueues go through the [`Outbox`]: concurrent requests are
//! grouped into one `insert_many` (one statement, one transaction, one
//! NOTIFY), which is what lets many small requests reach thousands per
//! second on a small machine. The batch endpoint is one `insert_many` of
//! its own. Both answer per notification: inserted (201), a repeat of an
//! earlier request with the same idempotency key (200, the original), or
//! why it was refused, naming the field. A single enqueue answers with the
//! support view; a batch item with the notification's id, app, state,
//! times and idempotency key only (the spec's `Notification`).
//!
//! A repeat is told from a conflicting reuse of a key by a SHA-256 of the
//! request as parsed (serde_json's maps are sorted, so the same request
//! always has the same digest, whatever its key order or whitespace).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use super::{ApiError, ApiState, Caller, Json, Path, Query, Scope};
use crate::config::ApiSettings;
use crate::model::{NotificationState, Priority};
use crate::store::notifications::{self as outbox, Enqueued, NewNotification, OutboxError};
use crate::store::status::{self, NotificationStatus, StatusError};

/// The most notifications one batch request may carry.
pub const MAX_BATCH: usize = 1_000;
/// Single enqueue statements that may run at once: while some run, the
/// requests arriving queue up and go together in the next one.
const CONCURRENT_WRITES: usize = 4;

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/notifications", post(enqueue).get(find))
        .route("/v1/notifications/batch", post(enqueue_batch))
        .route("/v1/notifications/{id}", get(show))
        .route("/v1/notifications/{id}/cancel", post(cancel))
        .route("/v1/users/{user_id}/notifications", get(list_for_user))
}

/// A notification as the API takes it: the outbox row's fields.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NewNotificationBody {
    app: String,
    user_id: Option<String>,
    device_ids: Option<Vec<i64>>,
    template: Option<String>,
    title: Option<String>,
    body: Option<String>,
    data: Option<serde_json::Value>,
    priority: Option<Priority>,
    collapse_key: Option<String>,
    ttl_seconds: Option<i32>,
    send_at: Option<DateTime<Utc>>,
    idempotency_key: Option<String>,
    options: Option<serde_json::Value>,
}

impl NewNotificationBody {
    /// The digest of the request: `null` and absent are the same, and the
    /// idempotency key counts wherever it came from (header or field).
    fn digest(&mut self) -> [u8; 32] {
        if self.data.as_ref().is_some_and(serde_json::Value::is_null) {
            self.data = None;
        }
        if self
            .options
            .as_ref()
            .is_some_and(serde_json::Value::is_null)
        {
            self.options = None;
        }
        let canonical = serde_json::to_vec(&*self).expect("a parsed request serializes");
        Sha256::digest(canonical).into()
    }

    fn into_request(mut self) -> outbox::Request {
        let request_sha256 = Some(self.digest());
        outbox::Request {
            notification: NewNotification {
                app: self.app,
                user_id: self.user_id,
                device_ids: self.device_ids,
                template: self.template,
                title: self.title,
                body: self.body,
                data: self.data.unwrap_or(serde_json::Value::Null),
                priority: self.priority,
                collapse_key: self.collapse_key,
                ttl_seconds: self.ttl_seconds,
                send_at: self.send_at,
                idempotency_key: self.idempotency_key,
                options: self.options.unwrap_or(serde_json::Value::Null),
            },
            request_sha256,
        }
    }
}

/// What the API checks before the store does: the key may send for the
/// app, and the template exists.
fn admit(state: &ApiState, caller: &Caller, body: &NewNotificationBody) -> Result<(), ApiError> {
    caller.require_app(state, &body.app)?;
    if let Some(t) = &body.template {
        if !state.templates.contains(t) {
            return Err(ApiError::unprocessable(
                "unknown_template",
                format!(
                    "unknown template {t:?}; add templates/{t}/<locale>.toml to this pushrelay's templates, or send an inline title and body"
                ),
            )
            .field("template"));
        }
    }
    Ok(())
}

fn refused(e: OutboxError) -> ApiError {
    match e {
        OutboxError::Database(e) => e.into(),
        OutboxError::Rejected(m) => ApiError::unprocessable(
            "rejected",
            format!("the database refused this notification: {m}"),
        ),
        e => {
            let mut err = ApiError::unprocessable("invalid_field", e.to_string());
            err.field = match &e {
                // The option itself (`options.badge`) when it is one option's.
                OutboxError::BadOptions(o) => Some(match o.option() {
                    Some(k) => format!("options.{k}"),
                    None => "options".to_owned(),
                }),
                e => e.field().map(str::to_owned),
            };
            err
        }
    }
}

fn reused(key: Option<&str>) -> ApiError {
    ApiError::unprocessable(
        "idempotency_key_reused",
        format!(
            "the idempotency key {:?} was already used for a different notification of this app; \
             use a new key for a new notification, or send exactly the original request to get the original back",
            key.unwrap_or_default()
        ),
    )
    .field("idempotency_key")
}

fn missing(id: Uuid) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!("no notification {id} (or not one of the apps this API key may see)"),
    )
}

/// What the outbox's writer answers each caller: a whole-batch failure is
/// one `ApiError`, cloned for everyone in the batch.
type Outcome = Result<Result<Enqueued, OutboxError>, ApiError>;

struct Job {
    request: outbox::Request,
    /// The request comes back with its outcome: the answer is built from
    /// it, so it is never copied.
    reply: oneshot::Sender<(outbox::Request, Outcome)>,
}

/// Groups concurrent single enqueues into one statement: a task takes
/// whatever has queued (up to `api.enqueue_batch`) and runs one
/// `insert_many`; every caller gets its own result back.
pub struct Outbox {
    tx: mpsc::Sender<Job>,
}

impl Outbox {
    /// Starts the writer task (needs a tokio runtime); it ends when the
    /// `Outbox` is dropped and the queue is drained.
    pub fn start(pool: PgPool, settings: &ApiSettings) -> Outbox {
        let batch = settings.enqueue_batch.max(1);
        let (tx, rx) = mpsc::channel(batch * 4);
        tokio::spawn(write(pool, rx, batch));
        Outbox { tx }
    }

    async fn enqueue(
        &self,
        request: outbox::Request,
    ) -> Result<(outbox::Request, Result<Enqueued, OutboxError>), ApiError> {
        let (reply, answer) = oneshot::channel();
        let gone = || ApiError::internal("the enqueue writer task is gone");
        self.tx
            .send(Job { request, reply })
            .await
            .map_err(|_| gone())?;
        let (request, outcome) = answer.await.map_err(|_| gone())?;
        Ok((request, outcome?))
    }
}

async fn write(pool: PgPool, mut rx: mpsc::Receiver<Job>, batch: usize) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_WRITES));
    let mut jobs = Vec::with_capacity(batch);
    loop {
        // A free slot first: while every slot is busy, requests pile up
        // in the channel and the next statement takes them all.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut jobs, batch).await == 0 {
            return;
        }
        let taken = std::mem::replace(&mut jobs, Vec::with_capacity(batch));
        let pool = pool.clone();
        tokio::spawn(async move {
            let (requests, replies): (Vec<_>, Vec<_>) =
                taken.into_iter().map(|j| (j.request, j.reply)).unzip();
            metrics::histogram!("pushrelay_api_enqueue_group_size").record(requests.len() as f64);
            match outbox::insert_many(&pool, &requests).await {
                Ok(results) => {
                    for ((reply, request), result) in replies.into_iter().zip(requests).zip(results)
                    {
                        let _ = reply.send((request, Ok(result)));
                    }
                }
                Err(e) => {
                    let err = ApiError::from(e);
                    for (reply, request) in replies.into_iter().zip(requests) {
                        let _ = reply.send((request, Err(err.clone())));
                    }
                }
            }
            drop(slot);
        });
    }
}

fn count_enqueued(results: &[&Result<Enqueued, OutboxError>]) {
    let inserted = results
        .iter()
        .filter(|r| matches!(r, Ok(Enqueued::Inserted { .. })))
        .count();
    if inserted > 0 {
        metrics::counter!("pushrelay_api_notifications_enqueued_total").increment(inserted as u64);
    }
}

/// `POST /v1/notifications`
async fn enqueue(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    headers: HeaderMap,
    Json(mut body): Json<NewNotificationBody>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Send)?;
    if let Some(header) = headers.get("idempotency-key") {
        let header = header.to_str().map_err(|_| {
            ApiError::bad_request(
                "invalid_header",
                "the Idempotency-Key header must be printable ASCII",
            )
            .field("Idempotency-Key")
        })?;
        match &body.idempotency_key {
            Some(field) if field != header => {
                return Err(ApiError::bad_request(
                    "idempotency_key_mismatch",
                    format!(
                        "the Idempotency-Key header ({header:?}) and the idempotency_key field ({field:?}) differ; send one, or the same in both"
                    ),
                )
                .field("idempotency_key"));
            }
            _ => body.idempotency_key = Some(header.to_owned()),
        }
    }
    admit(&state, &caller, &body)?;
    let request = body.into_request();
    let (request, result) = state.outbox.enqueue(request).await?;
    count_enqueued(&[&result]);
    match result.map_err(refused)? {
        Enqueued::Inserted {
            id,
            created_at,
            send_at,
        } => Ok((
            StatusCode::CREATED,
            [(
                axum::http::header::LOCATION,
                format!("/v1/notifications/{id}"),
            )],
            axum::Json(NotificationStatus::just_inserted(
                id,
                &request.notification,
                created_at,
                send_at,
            )),
        )
            .into_response()),
        Enqueued::Existing {
            id,
            same_request: true,
            ..
        } => Ok(axum::Json(load(&state.pool, id).await?).into_response()),
        Enqueued::Existing { .. } => Err(reused(request.notification.idempotency_key.as_deref())),
    }
}

async fn load(pool: &PgPool, id: Uuid) -> Result<NotificationStatus, ApiError> {
    match status::load(pool, id).await {
        Ok(n) => Ok(n),
        Err(StatusError::NotFound(id)) => Err(missing(id)),
        Err(StatusError::Database(e)) => Err(e.into()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    /// Parsed item by item, so one malformed item is that item's error.
    notifications: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct BatchAnswer<'a> {
    results: Vec<BatchResult<'a>>,
}

#[derive(Serialize)]
struct BatchResult<'a> {
    index: usize,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<BatchNotification<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

/// A batch item's notification: what a producer needs to follow it up
/// (`GET /v1/notifications/{id}` gives the rest), the spec's
/// `Notification`. Not the support view a single enqueue answers with: a
/// thousand of those made the answer several times the request.
#[derive(Serialize)]
struct BatchNotification<'a> {
    id: Uuid,
    app: &'a str,
    state: NotificationState,
    created_at: DateTime<Utc>,
    send_at: DateTime<Utc>,
    idempotency_key: Option<&'a str>,
}

#[derive(Serialize)]
struct ItemError {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl BatchResult<'_> {
    fn failed(index: usize, e: ApiError) -> Self {
        // Fields are named from the request's top, as the error of the
        // whole request would name them.
        let field = Some(match e.field {
            Some(f) => format!("notifications[{index}].{f}"),
            None => format!("notifications[{index}]"),
        });
        BatchResult {
            index,
            status: e.status.as_u16(),
            notification: None,
            error: Some(ItemError {
                code: e.code,
                message: e.message,
                field,
            }),
        }
    }
}

/// `POST /v1/notifications/batch`
async fn enqueue_batch(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Json(body): Json<BatchBody>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Send)?;
    let n = body.notifications.len();
    if n > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{n} notifications in one batch; at most {MAX_BATCH} are allowed: split it"),
        )
        .field("notifications"));
    }
    let mut results: Vec<Option<BatchResult<'_>>> = (0..n).map(|_| None).collect();
    let mut requests = Vec::with_capacity(n);
    let mut positions = Vec::with_capacity(n);
    for (i, item) in body.notifications.into_iter().enumerate() {
        let parsed = serde_path_to_error::deserialize::<_, NewNotificationBody>(item)
            .map_err(|e| {
                let path = e.path().to_string();
                let mut err = ApiError::unprocessable("invalid_field", e.inner().to_string());
                err.field = (path != ".").then_some(path);
                err
            })
            .and_then(|b| admit(&state, &caller, &b).map(|()| b));
        match parsed {
            Ok(b) => {
                requests.push(b.into_request());
                positions.push(i);
            }
            Err(e) => results[i] = Some(BatchResult::failed(i, e)),
        }
    }
    let enqueued = outbox::insert_many(&state.pool, &requests).await?;
    count_enqueued(&enqueued.iter().collect::<Vec<_>>());

    for ((i, request), result) in positions.into_iter().zip(&requests).zip(enqueued) {
        let notification = &request.notification;
        results[i] = Some(match result {
            Ok(Enqueued::Inserted {
                id,
                created_at,
                send_at,
            }) => BatchResult {
                index: i,
                status: 201,
                notification: Some(BatchNotification {
                    id,
                    app: &notification.app,
                    state: NotificationState::Pending,
                    created_at,
                    send_at,
                    idempotency_key: notification.idempotency_key.as_deref(),
                }),
                error: None,
            },
            // A repeat answers with the original, as the key's lookup read it.
            Ok(Enqueued::Existing {
                id,
                same_request: true,
                state,
                created_at,
                send_at,
            }) => BatchResult {
                index: i,
                status: 200,
                notification: Some(BatchNotification {
                    id,
                    app: &notification.app,
                    state,
                    created_at,
                    send_at,
                    idempotency_key: notification.idempotency_key.as_deref(),
                }),
                error: None,
            },
            Ok(Enqueued::Existing { .. }) => {
                BatchResult::failed(i, reused(notification.idempotency_key.as_deref()))
            }
            Err(e) => BatchResult::failed(i, refused(e)),
        });
    }
    let results: Vec<BatchResult<'_>> = results.into_iter().flatten().collect();
    Ok(axum::Json(BatchAnswer { results }).into_response())
}

/// `GET /v1/notifications/{id}`
async fn show(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<NotificationStatus>, ApiError> {
    caller.require(Scope::Read)?;
    let n = load(&state.pool, id).await?;
    // Another app's notification is as good as missing: say nothing of it.
    if !caller.can_see(&n.app) {
        return Err(missing(id));
    }
    Ok(axum::Json(n))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindQuery {
    app: Option<String>,
    idempotency_key: String,
}

/// `GET /v1/notifications?app=..&idempotency_key=..`
async fn find(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Query(q): Query<FindQuery>,
) -> Result<axum::Json<NotificationStatus>, ApiError> {
    caller.require(Scope::Read)?;
    let app = match (q.app, caller.apps()) {
        (Some(app), _) => app,
        (None, Some([only])) => only.clone(),
        (None, _) => {
            return Err(ApiError::bad_request(
                "missing_app",
                "give the app the idempotency key belongs to: ?app=<app>&idempotency_key=<key>",
            )
            .field("app"))
        }
    };
    let not_found = || {
        ApiError::not_found(
            "not_found",
            format!(
                "no notification of app {app:?} has the idempotency key {:?}",
                q.idempotency_key
            ),
        )
    };
    state.known_app(&app)?;
    if !caller.can_see(&app) {
        return Err(not_found());
    }
    match outbox::by_idempotency_key(&state.pool, &app, &q.idempotency_key).await? {
        Some(id) => Ok(axum::Json(load(&state.pool, id).await?)),
        None => Err(not_found()),
    }
}

/// `POST /v1/notifications/{id}/cancel`
async fn cancel(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<outbox::Cancellation>, ApiError> {
    caller.require(Scope::Send)?;
    match outbox::cancel(&state.pool, id, caller.apps()).await? {
        Some(c) => Ok(axum::Json(c)),
        None => Err(missing(id)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    app: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct Page {
    items: Vec<outbox::UserNotification>,
    next_cursor: Option<String>,
}

/// `GET /v1/users/{user_id}/notifications`
async fn list_for_user(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(user_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Page>, ApiError> {
    caller.require(Scope::Read)?;
    let (limit, cursor) = super::extract::page(q.limit, q.cursor.as_deref())?;
    let only;
    let apps = match q.app {
        Some(app) => {
            caller.require_app(&state, &app)?;
            only = [app];
            Some(&only[..])
        }
        None => caller.apps(),
    };
    let (items, next) = outbox::list_for_user(&state.pool, &user_id, apps, cursor, limit).await?;
    Ok(axum::Json(Page {
        items,
        next_cursor: next.map(|c| c.encode()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> NewNotificationBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_same_request_has_the_same_digest_whatever_its_key_order() {
        let a = parse(
            r#"{"app": "bank", "user_id": "u", "body": "b", "data": {"x": "1", "y": {"b": 1, "a": 2}}}"#,
        );
        let b = parse(
            r#"{"data": {"y": {"a": 2, "b": 1}, "x": "1"}, "body": "b", "user_id": "u", "app": "bank", "options": null}"#,
        );
        assert_eq!(a.clone().digest(), b.clone().digest());
        let c = parse(
            r#"{"app": "bank", "user_id": "u", "body": "c", "data": {"x": "1", "y": {"b": 1, "a": 2}}}"#,
        );
        assert_ne!(a.clone().digest(), c.clone().digest());
    }
}

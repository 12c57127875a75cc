//! Who is calling: `Authorization: Bearer <key>` resolved to an API key
//! with its scopes and apps, and each key's request rate.
//!
//! A verified key is cached for `api.key_cache_secs` so a busy caller
//! costs no database lookup per request; a revoked key therefore stops
//! working within that long. Unknown secrets are cached as unknown for the
//! same time (so a client retrying with a bad key does not hit the
//! database either); the cache is bounded and cleared when full. Keys are
//! never logged: spans carry the key's public prefix only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;

use super::error::ApiError;
use super::ApiState;
use crate::config::ApiSettings;
pub use crate::store::api_keys::Scope;
use crate::store::api_keys::{self, ApiKey};

/// Cached lookups beyond this are dropped wholesale: a bound on what a
/// flood of random keys can make us hold.
const MAX_CACHED: usize = 10_000;

/// A secret's digest → when it was looked up, and the key it named.
type Cache = HashMap<[u8; 32], (Instant, Option<Arc<ApiKey>>)>;

pub struct Keys {
    pool: PgPool,
    ttl: Duration,
    default_rate: u32,
    cache: Mutex<Cache>,
    /// Per key id: the GCRA "theoretical arrival time".
    rates: Mutex<HashMap<i64, Instant>>,
}

impl Keys {
    pub fn new(pool: PgPool, settings: &ApiSettings) -> Keys {
        Keys {
            pool,
            ttl: settings.key_cache(),
            default_rate: settings.rate_per_key,
            cache: Mutex::default(),
            rates: Mutex::default(),
        }
    }

    async fn lookup(&self, secret: &str) -> Result<Option<Arc<ApiKey>>, ApiError> {
        let digest = api_keys::digest(secret);
        let now = Instant::now();
        if let Some((at, key)) = self.cache.lock().unwrap().get(&digest) {
            if now.duration_since(*at) < self.ttl {
                return Ok(key.clone());
            }
        }
        let key = api_keys::find(&self.pool, secret)
            .await
            .map_err(|e| match e {
                api_keys::KeyError::Database(db) => ApiError::from(db),
                other => ApiError::internal(other),
            })?
            .map(Arc::new);
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(digest, (now, key.clone()));
        Ok(key)
    }

    /// Requests a second `key` may make: its own rate, or the default.
    fn rate(&self, key: &ApiKey) -> u32 {
        key.rate_per_sec
            .map(|r| r.max(1) as u32)
            .unwrap_or(self.default_rate)
            .max(1)
    }

    /// GCRA: a key may make `rate` requests a second, in bursts of up to
    /// `rate`. `Err(wait)` when it is over.
    fn admit(&self, key: &ApiKey) -> Result<(), Duration> {
        let rate = self.rate(key);
        let interval = Duration::from_secs(1) / rate;
        let burst = Duration::from_secs(1);
        let now = Instant::now();
        let mut rates = self.rates.lock().unwrap();
        let tat = rates.entry(key.id).or_insert(now);
        let start = (*tat).max(now);
        if start > now + burst {
            return Err(start - now - burst);
        }
        *tat = start + interval;
        Ok(())
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: Arc<ApiKey>,
}

impl Caller {
    /// 403 unless the key has `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.key.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this API key ({}) lacks the {scope} scope this request needs; use a key that has it \
                 (`pushrelay keys create --scopes {scope}`)",
                self.key.prefix
            )))
        }
    }

    /// 403 unless the key has one of `scopes`.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        match scopes.iter().find(|s| self.key.scopes.allows(**s)) {
            Some(_) => Ok(()),
            None => Err(ApiError::forbidden(format!(
                "this API key ({}) needs one of the scopes {} for this request",
                self.key.prefix,
                scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The app must be configured (422 naming it) and within the key's
    /// apps (403).
    pub fn require_app(&self, state: &ApiState, app: &str) -> Result<(), ApiError> {
        state.known_app(app)?;
        if !self.can_see(app) {
            return Err(ApiError::forbidden(format!(
                "this API key ({}) is limited to the apps {}; it cannot act on app {app:?}",
                self.key.prefix,
                self.apps().unwrap_or_default().join(", ")
            )));
        }
        Ok(())
    }

    /// Whether the key covers `app`.
    pub fn can_see(&self, app: &str) -> bool {
        self.apps().is_none_or(|apps| apps.iter().any(|a| a == app))
    }

    /// The apps the key is limited to; `None` for every app.
    pub fn apps(&self) -> Option<&[String]> {
        self.key.apps.as_deref()
    }
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::unauthorized(message).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Response> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "this request needs an API key: send Authorization: Bearer <key> (create one with `pushrelay keys create`)",
            ));
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let Some(secret) = secret else {
            return Err(unauthorized(
                "the Authorization header must be `Bearer <key>`",
            ));
        };
        let Some(key) = state
            .keys
            .lookup(secret)
            .await
            .map_err(IntoResponse::into_response)?
        else {
            return Err(unauthorized(
                "this API key is not valid (unknown or revoked); check it, or create one with `pushrelay keys create`",
            ));
        };
        tracing::Span::current().record("key", key.prefix.as_str());
        if let Err(wait) = state.keys.admit(&key) {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this API key ({}) is over its rate of {} requests a second; retry after {secs} s",
                    key.prefix,
                    state.keys.rate(&key)
                ),
            )
            .retry_after(secs)
            .into_response());
        }
        Ok(Caller { key })
    }
}

//! Support console sessions: a signed-in API key behind a cookie.
//!
//! The cookie carries 256 random bits; only their SHA-256 is stored (as
//! for API keys: nothing is gained from a slow hash at that entropy). A
//! session lives in PostgreSQL rather than in a signed cookie so that
//! signing out ends it everywhere at once, every daemon behind a load
//! balancer knows it, and revoking the key ends it too (the lookup joins
//! the key and ignores revoked ones).

use std::time::Duration;

use base64::Engine;
use sqlx::PgPool;

use super::api_keys::{digest, ApiKey};

const CREATE: &str = include_str!("sessions/create.sql");
const FIND: &str = include_str!("sessions/find.sql");
const DELETE: &str = include_str!("sessions/delete.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("sessions/create", CREATE),
    ("sessions/find", FIND),
    ("sessions/delete", DELETE),
];

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Starts a session for `key` lasting `lifetime`; returns the cookie's
/// secret (never stored).
pub async fn create(
    pool: &PgPool,
    key: &ApiKey,
    lifetime: Duration,
) -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    sqlx::query(CREATE)
        .bind(&digest(&secret)[..])
        .bind(key.id)
        .bind(lifetime.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(secret)
}

/// The key signed in with `secret`, while the session lasts and the key
/// is not revoked.
pub async fn find(pool: &PgPool, secret: &str) -> Result<Option<ApiKey>, SessionError> {
    Ok(sqlx::query_as(FIND)
        .bind(&digest(secret)[..])
        .fetch_optional(pool)
        .await?)
}

/// Ends a session; ending one that is gone is not an error.
pub async fn delete(pool: &PgPool, secret: &str) -> Result<(), SessionError> {
    sqlx::query(DELETE)
        .bind(&digest(secret)[..])
        .execute(pool)
        .await?;
    Ok(())
}

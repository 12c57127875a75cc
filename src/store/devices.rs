//! Devices: the push tokens of each user of each app.
//!
//! A device is registered (or re-registered) by upsert on its
//! (app, platform, token). When a provider reports the token dead, the device
//! is *invalidated*, not deleted, so support can still see what happened and
//! fan-out skips it from then on; registering the same token again
//! reactivates it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::model::{mask_token, token_problem, Environment, Platform};

const REGISTER: &str = include_str!("devices/register.sql");
const LIST: &str = include_str!("devices/list.sql");
const REMOVE: &str = include_str!("devices/remove.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("devices/register", REGISTER),
    ("devices/list", LIST),
    ("devices/remove", REMOVE),
];

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid {platform} token {token}: {problem}")]
    InvalidToken {
        platform: Platform,
        /// Masked: tokens never appear whole in errors.
        token: String,
        problem: &'static str,
    },
    #[error("no device with id {0}")]
    NotFound(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct NewDevice<'a> {
    pub app: &'a str,
    pub user_id: &'a str,
    pub platform: Platform,
    pub token: &'a str,
    pub environment: Environment,
    pub locale: &'a str,
    pub timezone: &'a str,
}

/// Checks a token's shape before it is stored, so garbage is refused at
/// registration rather than burning a send attempt later.
pub fn validate_token(platform: Platform, token: &str) -> Result<(), DeviceError> {
    match token_problem(platform, token) {
        None => Ok(()),
        Some(problem) => Err(DeviceError::InvalidToken {
            platform,
            token: mask_token(token),
            problem,
        }),
    }
}

/// Registers a device, or re-registers it: an existing (app, platform,
/// token) gets the new user, locale and timezone and is reactivated.
/// Returns the device id.
pub async fn register(pool: &PgPool, d: &NewDevice<'_>) -> Result<i64, DeviceError> {
    let token = if d.platform == Platform::Ios {
        d.token.to_ascii_lowercase()
    } else {
        d.token.to_owned()
    };
    validate_token(d.platform, &token)?;
    Ok(sqlx::query_scalar(REGISTER)
        .bind(d.app)
        .bind(d.user_id)
        .bind(d.platform)
        .bind(&token)
        .bind(d.environment)
        .bind(d.locale)
        .bind(d.timezone)
        .fetch_one(pool)
        .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub app: String,
    pub user_id: String,
    pub platform: Platform,
    #[serde(skip)]
    pub token: String,
    pub environment: Environment,
    pub locale: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub invalidated_at: Option<DateTime<Utc>>,
    pub invalidated_reason: Option<String>,
}

pub async fn list(
    pool: &PgPool,
    app: Option<&str>,
    user_id: Option<&str>,
) -> Result<Vec<DeviceRow>, DeviceError> {
    Ok(sqlx::query_as(LIST)
        .bind(app)
        .bind(user_id)
        .fetch_all(pool)
        .await?)
}

/// Unregisters a device. It is invalidated rather than deleted so its
/// delivery history stays answerable.
pub async fn remove(pool: &PgPool, id: i64) -> Result<(), DeviceError> {
    let done = sqlx::query(REMOVE).bind(id).execute(pool).await?;
    if done.rows_affected() == 0 {
        return Err(DeviceError::NotFound(id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_tokens_are_named_but_masked() {
        let garbage = "zz".repeat(32);
        let err = validate_token(Platform::Ios, &garbage)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("only hex digits") && !err.contains(&garbage),
            "{err}"
        );
    }
}

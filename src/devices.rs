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

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown platform {0:?}; use \"ios\" or \"android\"")]
    UnknownPlatform(String),
    #[error("unknown APNs environment {0:?}; use \"production\" or \"sandbox\"")]
    UnknownEnvironment(String),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Ios,
    Android,
}

impl Platform {
    pub const ALL: [Platform; 2] = [Platform::Ios, Platform::Android];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Result<Platform, DeviceError> {
        match s {
            "ios" => Ok(Platform::Ios),
            "android" => Ok(Platform::Android),
            other => Err(DeviceError::UnknownPlatform(other.into())),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// APNs has separate production and sandbox (development build) gateways,
/// and a token only works on the one it was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Sandbox,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Sandbox => "sandbox",
        }
    }

    pub fn parse(s: &str) -> Result<Environment, DeviceError> {
        match s {
            "production" => Ok(Environment::Production),
            "sandbox" => Ok(Environment::Sandbox),
            other => Err(DeviceError::UnknownEnvironment(other.into())),
        }
    }
}

/// A token shortened for logs, errors and support screens: enough to tell
/// tokens apart, never enough to send to one.
pub fn mask_token(token: &str) -> String {
    let n = token.chars().count();
    if n <= 12 {
        return format!("{}…", token.chars().take(n / 3).collect::<String>());
    }
    let head: String = token.chars().take(6).collect();
    let tail: String = token.chars().skip(n - 4).collect();
    format!("{head}…{tail}")
}

/// Checks a token's shape before it is stored, so garbage is refused at
/// registration rather than burning a send attempt later.
pub fn validate_token(platform: Platform, token: &str) -> Result<(), DeviceError> {
    let problem = match platform {
        // APNs tokens are hex; Apple says not to rely on a fixed length.
        Platform::Ios if token.len() < 32 || token.len() > 200 => {
            Some("APNs tokens are 32 to 200 hex digits")
        }
        Platform::Ios if !token.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some("APNs tokens contain only hex digits (0-9, a-f)")
        }
        Platform::Ios if token.len() % 2 != 0 => {
            Some("APNs tokens are whole bytes: an even number of hex digits")
        }
        Platform::Android if token.len() < 8 || token.len() > 4096 => {
            Some("FCM registration tokens are 8 to 4096 characters")
        }
        Platform::Android if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
            Some("FCM registration tokens contain no spaces or control characters")
        }
        _ => None,
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(DeviceError::InvalidToken {
            platform,
            token: mask_token(token),
            problem,
        }),
    }
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
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO pushrelay.devices (app, user_id, platform, token, environment, locale, timezone)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (app, platform, token) DO UPDATE
            SET user_id = EXCLUDED.user_id, environment = EXCLUDED.environment,
                locale = EXCLUDED.locale, timezone = EXCLUDED.timezone,
                updated_at = now(), invalidated_at = NULL, invalidated_reason = NULL
         RETURNING id",
    )
    .bind(d.app)
    .bind(d.user_id)
    .bind(d.platform.as_str())
    .bind(&token)
    .bind(d.environment.as_str())
    .bind(d.locale)
    .bind(d.timezone)
    .fetch_one(pool)
    .await?;
    Ok(id)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub app: String,
    pub user_id: String,
    pub platform: String,
    #[serde(skip)]
    pub token: String,
    pub environment: String,
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
    Ok(sqlx::query_as(
        "SELECT id, app, user_id, platform, token, environment, locale, created_at, updated_at,
                invalidated_at, invalidated_reason
           FROM pushrelay.devices
          WHERE ($1::text IS NULL OR app = $1) AND ($2::text IS NULL OR user_id = $2)
          ORDER BY app, user_id, id",
    )
    .bind(app)
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// Unregisters a device. It is invalidated rather than deleted so its
/// delivery history stays answerable.
pub async fn remove(pool: &PgPool, id: i64) -> Result<(), DeviceError> {
    let done = sqlx::query(
        "UPDATE pushrelay.devices
            SET invalidated_at = COALESCE(invalidated_at, now()),
                invalidated_reason = COALESCE(invalidated_reason, 'removed by operator'),
                updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DeviceError::NotFound(id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_tokens_apart_but_unusable() {
        let t = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
        let m = mask_token(t);
        assert_eq!(m, "a1b2c3…8f90");
        assert!(mask_token("short").len() < "short".len() + 3);
    }

    #[test]
    fn token_shapes() {
        let hex64 = "ab".repeat(32);
        assert!(validate_token(Platform::Ios, &hex64).is_ok());
        let err = validate_token(Platform::Ios, "not a token")
            .unwrap_err()
            .to_string();
        assert!(err.contains("32 to 200 hex digits"), "{err}");
        let err = validate_token(Platform::Ios, &"zz".repeat(32))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("only hex digits") && !err.contains(&"zz".repeat(32)),
            "{err}"
        );
        assert!(validate_token(Platform::Android, "fcm:APA91bH-token_x").is_ok());
        assert!(validate_token(Platform::Android, "has space in it").is_err());
    }
}

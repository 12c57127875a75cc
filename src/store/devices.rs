//! Devices: the push tokens of each user of each app, with what a mobile
//! backend knows about them (locale, timezone, app version, tags, free-form
//! attributes and per-category consent).
//!
//! A device is registered (or re-registered) by upsert on its
//! (app, platform, token). When a provider reports the token dead, or the
//! device is removed, it is *invalidated*, not deleted, so support can still
//! see what happened and fan-out skips it from then on; registering the same
//! token again reactivates it. Only erasure (`store::users`) deletes devices.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use sqlx::types::Json;
use sqlx::PgPool;

use crate::model::{mask_token, token_problem, Environment, Platform};

const REGISTER: &str = include_str!("devices/register.sql");
const LIST: &str = include_str!("devices/list.sql");
const REMOVE: &str = include_str!("devices/remove.sql");
const REPLACE_TOKEN: &str = include_str!("devices/replace_token.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("devices/replace_token", REPLACE_TOKEN),
    ("devices/register", REGISTER),
    ("devices/list", LIST),
    ("devices/remove", REMOVE),
];

/// At most this many tags per device, of at most `MAX_TAG_CHARS` each.
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 64;
/// `attributes` as JSON text, in bytes: a device row stays small.
pub const MAX_ATTRIBUTES_BYTES: usize = 4096;
/// Longest user id, locale, timezone, app version and consent category.
pub const MAX_USER_ID_CHARS: usize = 256;
const MAX_LOCALE_CHARS: usize = 35;
const MAX_TIMEZONE_CHARS: usize = 64;
const MAX_APP_VERSION_CHARS: usize = 64;
const MAX_CONSENT_KEY_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid {platform} token {token}: {problem}")]
    InvalidToken {
        platform: Platform,
        /// Masked: tokens never appear whole in errors.
        token: String,
        problem: &'static str,
    },
    /// A field other than the token; `field` is its name in the API's
    /// request body (`tags[3]`, `consent`).
    #[error("invalid {field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("no device with id {0}")]
    NotFound(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> DeviceError {
    DeviceError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The CLI's, the demo's and the tests' registration: the fields every
/// device had before the HTTP API. Tags, attributes and consent a device
/// already has are kept.
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

/// A registration with every field. `None` is "not given": a new device
/// takes the default (production, `en`, `UTC`, no version, no tags, `{}`),
/// a known one keeps its value, except that tags, attributes and consent
/// start over when the token moves to another user.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub app: &'a str,
    pub user_id: &'a str,
    pub platform: Platform,
    pub token: &'a str,
    pub environment: Option<Environment>,
    pub locale: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub app_version: Option<&'a str>,
    pub tags: Option<&'a [String]>,
    pub attributes: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// Category → consented. A category not named is not consented to.
    pub consent: Option<&'a BTreeMap<String, bool>>,
    /// The token this one replaces (the platform issued a new one): the
    /// device keeps its id, history and settings under the new token.
    pub previous_token: Option<&'a str>,
}

impl<'a> Registration<'a> {
    /// A registration of the token alone, every other field not given.
    pub fn new(app: &'a str, user_id: &'a str, platform: Platform, token: &'a str) -> Self {
        Registration {
            app,
            user_id,
            platform,
            token,
            environment: None,
            locale: None,
            timezone: None,
            app_version: None,
            tags: None,
            attributes: None,
            consent: None,
            previous_token: None,
        }
    }
}

impl<'a> From<&NewDevice<'a>> for Registration<'a> {
    fn from(d: &NewDevice<'a>) -> Self {
        Registration {
            environment: Some(d.environment),
            locale: Some(d.locale),
            timezone: Some(d.timezone),
            ..Registration::new(d.app, d.user_id, d.platform, d.token)
        }
    }
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

/// A short text field: not empty, not too long, no control characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), DeviceError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("is longer than {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// An IANA time zone name's shape (`Europe/Vienna`, `America/Argentina/
/// Buenos_Aires`, `Etc/GMT+3`, `UTC`). The list of zones changes with the
/// tz database, so the name itself is not looked up: a misspelt zone is the
/// app's to fix, and nothing here depends on it.
fn check_timezone(tz: &str) -> Result<(), DeviceError> {
    check_text("timezone", tz, MAX_TIMEZONE_CHARS)?;
    let shaped = tz.split('/').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-+".contains(&b))
    }) && tz.as_bytes()[0].is_ascii_alphabetic();
    if !shaped {
        return Err(invalid(
            "timezone",
            format!("{tz:?} is not an IANA time zone name such as \"Europe/Vienna\" or \"UTC\""),
        ));
    }
    Ok(())
}

/// A BCP 47 language tag's shape (`en`, `pt-BR`, `zh-Hant-TW`); `_` is
/// accepted for the platforms that write `pt_BR`.
fn check_locale(locale: &str) -> Result<(), DeviceError> {
    check_text("locale", locale, MAX_LOCALE_CHARS)?;
    let shaped = locale.split(['-', '_']).all(|part| {
        !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !shaped {
        return Err(invalid(
            "locale",
            format!("{locale:?} is not a language tag such as \"en\" or \"pt-BR\""),
        ));
    }
    Ok(())
}

/// Checks every field but the app (the caller knows which apps exist).
pub fn validate(r: &Registration<'_>) -> Result<(), DeviceError> {
    check_text("user_id", r.user_id, MAX_USER_ID_CHARS)?;
    if let Some(locale) = r.locale {
        check_locale(locale)?;
    }
    if let Some(tz) = r.timezone {
        check_timezone(tz)?;
    }
    if let Some(v) = r.app_version {
        check_text("app_version", v, MAX_APP_VERSION_CHARS)?;
    }
    if let Some(tags) = r.tags {
        if tags.len() > MAX_TAGS {
            return Err(invalid(
                "tags",
                format!("has {} tags; a device has at most {MAX_TAGS}", tags.len()),
            ));
        }
        for (i, tag) in tags.iter().enumerate() {
            check_text(&format!("tags[{i}]"), tag, MAX_TAG_CHARS)?;
        }
    }
    if let Some(attributes) = r.attributes {
        let size = serde_json::to_string(attributes).map_or(usize::MAX, |s| s.len());
        if size > MAX_ATTRIBUTES_BYTES {
            return Err(invalid(
                "attributes",
                format!(
                    "is {size} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES} are kept per device"
                ),
            ));
        }
    }
    if let Some(consent) = r.consent {
        for category in consent.keys() {
            check_text("consent", category, MAX_CONSENT_KEY_CHARS)?;
        }
    }
    Ok(())
}

/// The token as stored: APNs tokens are hex, and Apple's SDK and the apps
/// print them in either case, so one device is one row whatever the case.
fn stored_token(platform: Platform, token: &str) -> String {
    if platform == Platform::Ios {
        token.to_ascii_lowercase()
    } else {
        token.to_owned()
    }
}

/// Tags in their first order, each once.
fn dedup_tags(tags: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(tags.len());
    tags.iter()
        .filter(|t| seen.insert(t.as_str()))
        .cloned()
        .collect()
}

/// A device as registered, and whether this call created it.
#[derive(Debug, Clone)]
pub struct Registered {
    pub device: DeviceRow,
    pub created: bool,
}

/// Registers a device with every field, or re-registers it (see
/// `Registration` for what a field not given does). Invalid input is an
/// error naming the field.
pub async fn register_device(
    pool: &PgPool,
    r: &Registration<'_>,
) -> Result<Registered, DeviceError> {
    let token = stored_token(r.platform, r.token);
    validate_token(r.platform, &token)?;
    validate(r)?;
    let tags = r.tags.map(dedup_tags);
    let previous = match r.previous_token {
        Some(p) => {
            let p = stored_token(r.platform, p);
            validate_token(r.platform, &p).map_err(|e| match e {
                DeviceError::InvalidToken { problem, .. } => invalid("previous_token", problem),
                e => e,
            })?;
            (p != token).then_some(p)
        }
        None => None,
    };
    let register = sqlx::query_as::<_, RegisteredRow>(REGISTER)
        .bind(r.app)
        .bind(r.user_id)
        .bind(r.platform)
        .bind(&token)
        .bind(r.environment)
        .bind(r.locale)
        .bind(r.timezone)
        .bind(r.app_version)
        .bind(tags)
        .bind(r.attributes.map(Json))
        .bind(r.consent.map(Json));
    // A transaction only when a token is replaced: the usual registration
    // (every app launch) stays one statement.
    let row = match previous {
        None => register.fetch_one(pool).await?,
        Some(previous) => {
            let mut tx = pool.begin().await?;
            sqlx::query(REPLACE_TOKEN)
                .bind(r.app)
                .bind(r.platform)
                .bind(&previous)
                .bind(&token)
                .execute(&mut *tx)
                .await?;
            let row = register.fetch_one(&mut *tx).await?;
            tx.commit().await?;
            row
        }
    };
    Ok(Registered {
        device: row.device,
        created: row.created,
    })
}

/// Registers a device, or re-registers it: an existing (app, platform,
/// token) gets the new user, environment, locale and timezone and is
/// reactivated. Returns the device id.
pub async fn register(pool: &PgPool, d: &NewDevice<'_>) -> Result<i64, DeviceError> {
    Ok(register_device(pool, &d.into()).await?.device.id)
}

#[derive(sqlx::FromRow)]
struct RegisteredRow {
    #[sqlx(flatten)]
    device: DeviceRow,
    created: bool,
}

fn masked<S: Serializer>(token: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_token(token))
}

/// A device as stored. It serializes with its token masked: the whole
/// token never leaves pushrelay through a listing.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub app: String,
    pub user_id: String,
    pub platform: Platform,
    #[serde(serialize_with = "masked")]
    pub token: String,
    pub environment: Environment,
    pub locale: String,
    pub timezone: String,
    pub app_version: Option<String>,
    pub tags: Vec<String>,
    pub attributes: Json<serde_json::Map<String, serde_json::Value>>,
    pub consent: Json<BTreeMap<String, bool>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the device last registered.
    pub last_seen_at: Option<DateTime<Utc>>,
    pub invalidated_at: Option<DateTime<Utc>>,
    pub invalidated_reason: Option<String>,
    /// The device's Amazon SNS platform endpoint (SNS routes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sns_endpoint_arn: Option<String>,
}

/// Devices by app and user (each `None` for all).
pub async fn list(
    pool: &PgPool,
    app: Option<&str>,
    user_id: Option<&str>,
) -> Result<Vec<DeviceRow>, DeviceError> {
    list_in(pool, app, user_id, None).await
}

/// Every device of a user, invalidated ones too, in the apps `apps`
/// allows (`None`: every app).
pub async fn list_for_user(
    pool: &PgPool,
    user_id: &str,
    apps: Option<&[String]>,
) -> Result<Vec<DeviceRow>, DeviceError> {
    list_in(pool, None, Some(user_id), apps).await
}

async fn list_in(
    pool: &PgPool,
    app: Option<&str>,
    user_id: Option<&str>,
    apps: Option<&[String]>,
) -> Result<Vec<DeviceRow>, DeviceError> {
    Ok(sqlx::query_as(LIST)
        .bind(app)
        .bind(user_id)
        .bind(apps)
        .fetch_all(pool)
        .await?)
}

/// Unregisters a device (the operator's CLI). It is invalidated rather
/// than deleted so its delivery history stays answerable.
pub async fn remove(pool: &PgPool, id: i64) -> Result<(), DeviceError> {
    remove_in(pool, id, None, "removed by operator").await
}

/// Unregisters a device of one of the apps `apps` allows (`None`: any),
/// recording `reason`; `NotFound` when there is no such device, or it is
/// of another app. Removing a removed device again succeeds and keeps the
/// first reason.
pub async fn remove_in(
    pool: &PgPool,
    id: i64,
    apps: Option<&[String]>,
    reason: &str,
) -> Result<(), DeviceError> {
    let done = sqlx::query(REMOVE)
        .bind(id)
        .bind(reason)
        .bind(apps)
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

    fn field_of(r: &Registration<'_>) -> String {
        match validate(r) {
            Err(DeviceError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn fields_are_checked_and_named() {
        let base = Registration::new("bank", "u1", Platform::Android, "fcm-token-1");
        assert!(validate(&base).is_ok());
        for tz in [
            "Europe/Vienna",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+3",
            "UTC",
        ] {
            assert!(
                validate(&Registration {
                    timezone: Some(tz),
                    ..base.clone()
                })
                .is_ok(),
                "{tz}"
            );
        }
        for tz in [
            "",
            "Europe/ Vienna",
            "Europe//Vienna",
            "/UTC",
            &"A".repeat(65),
        ] {
            assert_eq!(
                field_of(&Registration {
                    timezone: Some(tz),
                    ..base.clone()
                }),
                "timezone",
                "{tz:?}"
            );
        }
        for locale in ["en", "pt-BR", "pt_BR", "zh-Hant-TW"] {
            assert!(
                validate(&Registration {
                    locale: Some(locale),
                    ..base.clone()
                })
                .is_ok(),
                "{locale}"
            );
        }
        assert_eq!(
            field_of(&Registration {
                locale: Some("en US"),
                ..base.clone()
            }),
            "locale"
        );
        assert_eq!(
            field_of(&Registration {
                user_id: " ",
                ..base.clone()
            }),
            "user_id"
        );
        let tags = vec!["vip".to_owned(), String::new()];
        assert_eq!(
            field_of(&Registration {
                tags: Some(&tags),
                ..base.clone()
            }),
            "tags[1]"
        );
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(
            field_of(&Registration {
                tags: Some(&many),
                ..base.clone()
            }),
            "tags"
        );
        let mut big = serde_json::Map::new();
        big.insert("notes".into(), "x".repeat(MAX_ATTRIBUTES_BYTES).into());
        assert_eq!(
            field_of(&Registration {
                attributes: Some(&big),
                ..base.clone()
            }),
            "attributes"
        );
    }

    #[test]
    fn tags_keep_their_order_once_each() {
        let tags: Vec<String> = ["b", "a", "b", "c", "a"].map(String::from).to_vec();
        assert_eq!(dedup_tags(&tags), ["b", "a", "c"]);
    }
}

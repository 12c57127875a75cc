//! API keys: who may call the HTTP API, with which scopes, for which apps.
//!
//! A key is `prk_` followed by 43 characters of base64url (32 random bytes
//! from the operating system). Only its SHA-256 is stored: the secret has
//! 256 bits of entropy, so nothing is gained from a slow password hash,
//! and a lookup stays one index probe. The first characters (`prefix`) are
//! kept in clear so listings and logs can tell keys apart without
//! revealing them. The secret is shown once, when the key is created.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

const INSERT: &str = include_str!("api_keys/insert.sql");
const BY_SECRET: &str = include_str!("api_keys/by_secret.sql");
const LIST: &str = include_str!("api_keys/list.sql");
const REVOKE: &str = include_str!("api_keys/revoke.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("api_keys/insert", INSERT),
    ("api_keys/by_secret", BY_SECRET),
    ("api_keys/list", LIST),
    ("api_keys/revoke", REVOKE),
];

/// Every key starts with this, so a leaked one is recognisable (secret
/// scanners, log filters).
pub const KEY_PREFIX: &str = "prk_";
/// Characters of a key kept in clear: `prk_` and 8 of the secret.
const SHOWN: usize = KEY_PREFIX.len() + 8;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown scope {0:?}; scopes are send, read, devices, campaigns and admin")]
    UnknownScope(String),
    #[error("a key needs at least one scope (send, read, devices, campaigns, admin)")]
    NoScope,
    #[error("a key's name must not be empty")]
    NoName,
    #[error("no API key with id or prefix {0:?}; `pushrelay keys list` shows them")]
    NotFound(String),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a key allows. `Admin` includes every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Enqueue and cancel notifications.
    Send,
    /// Read notifications, their deliveries and attempts.
    Read,
    /// Register and remove devices, report device receipts.
    Devices,
    /// Create, read and control campaigns; upload user lists.
    Campaigns,
    /// Everything, and erasing a user.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Send,
        Scope::Read,
        Scope::Devices,
        Scope::Campaigns,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Read => "read",
            Scope::Devices => "devices",
            Scope::Campaigns => "campaigns",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Scope, KeyError> {
        Scope::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| KeyError::UnknownScope(s.to_owned()))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key as stored (never its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The key's first characters, e.g. `prk_Xy3kQ9aB`.
    pub prefix: String,
    #[sqlx(try_from = "Vec<String>")]
    pub scopes: Scopes,
    /// `None`: every app.
    pub apps: Option<Vec<String>>,
    pub rate_per_sec: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key's scopes, parsed once when it is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Scopes(pub Vec<Scope>);

impl Scopes {
    pub fn allows(&self, scope: Scope) -> bool {
        self.0.iter().any(|&s| s == scope || s == Scope::Admin)
    }
}

impl TryFrom<Vec<String>> for Scopes {
    type Error = KeyError;
    fn try_from(v: Vec<String>) -> Result<Scopes, KeyError> {
        v.iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map(Scopes)
    }
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub apps: Option<Vec<String>>,
    pub rate_per_sec: Option<i32>,
}

/// The digest a secret is stored and looked up by.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Creates a key; returns it and its secret (shown once, never stored).
pub async fn create(pool: &PgPool, new: &NewKey) -> Result<(ApiKey, String), KeyError> {
    if new.name.trim().is_empty() {
        return Err(KeyError::NoName);
    }
    if new.scopes.is_empty() {
        return Err(KeyError::NoScope);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
    let key = sqlx::query_as(INSERT)
        .bind(new.name.trim())
        .bind(&secret[..SHOWN])
        .bind(&digest(&secret)[..])
        .bind(&scopes)
        .bind(&new.apps)
        .bind(new.rate_per_sec)
        .fetch_one(pool)
        .await?;
    Ok((key, secret))
}

/// The live (not revoked) key with this secret, if any.
pub async fn find(pool: &PgPool, secret: &str) -> Result<Option<ApiKey>, KeyError> {
    Ok(sqlx::query_as(BY_SECRET)
        .bind(&digest(secret)[..])
        .fetch_optional(pool)
        .await?)
}

/// Every key, revoked ones only if asked.
pub async fn list(pool: &PgPool, with_revoked: bool) -> Result<Vec<ApiKey>, KeyError> {
    Ok(sqlx::query_as(LIST)
        .bind(with_revoked)
        .fetch_all(pool)
        .await?)
}

/// Revokes the key with this id or prefix. Running API processes stop
/// accepting it within `api.key_cache_secs`.
pub async fn revoke(pool: &PgPool, id_or_prefix: &str) -> Result<ApiKey, KeyError> {
    let id: i64 = id_or_prefix.parse().unwrap_or(-1);
    sqlx::query_as(REVOKE)
        .bind(id)
        .bind(id_or_prefix)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| KeyError::NotFound(id_or_prefix.to_owned()))
}

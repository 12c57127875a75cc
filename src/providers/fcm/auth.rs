//! FCM authentication: the service account signs an RS256 JWT assertion
//! that its `token_uri` exchanges for an OAuth access token, cached and
//! refreshed shortly before it expires, by one caller at a time however
//! many sends are waiting (the rest wait for that one refresh).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::providers::{http, SendError};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

#[derive(Deserialize)]
pub(super) struct ServiceAccount {
    pub(super) project_id: String,
    pub(super) private_key: String,
    pub(super) client_email: String,
    pub(super) token_uri: String,
}

/// The OAuth access token of one service account.
pub struct AccessToken {
    client: reqwest::Client,
    token_uri: String,
    client_email: String,
    key: jsonwebtoken::EncodingKey,
    cached: RwLock<Option<(Arc<str>, Instant)>>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl AccessToken {
    pub(super) fn new(
        client: reqwest::Client,
        account: &ServiceAccount,
    ) -> Result<AccessToken, jsonwebtoken::errors::Error> {
        Ok(AccessToken {
            client,
            token_uri: account.token_uri.clone(),
            client_email: account.client_email.clone(),
            key: jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())?,
            cached: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        })
    }

    fn fresh(&self) -> Option<Arc<str>> {
        match &*self.cached.read().unwrap() {
            Some((t, refresh_at)) if Instant::now() < *refresh_at => Some(t.clone()),
            _ => None,
        }
    }

    /// A valid bearer value; at most one refresh in flight.
    pub(super) async fn bearer(&self) -> Result<Arc<str>, SendError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _one_at_a_time = self.refresh.lock().await;
        if let Some(t) = self.fresh() {
            return Ok(t); // refreshed while we waited
        }
        self.fetch().await
    }

    /// Forgets `used` after FCM rejected it, unless already replaced.
    pub(super) fn rejected(&self, used: &Arc<str>) {
        let mut c = self.cached.write().unwrap();
        if c.as_ref().is_some_and(|(t, _)| Arc::ptr_eq(t, used)) {
            *c = None;
        }
    }

    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    async fn fetch(&self) -> Result<Arc<str>, SendError> {
        let now = Utc::now().timestamp();
        let claims = json!({
            "iss": self.client_email, "scope": SCOPE, "aud": self.token_uri,
            "iat": now, "exp": now + 3600,
        });
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )
        .map_err(|e| SendError::config(None, format!("cannot sign the OAuth assertion: {e}")))?;
        let resp = self
            .client
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| SendError::Transient {
                status: None,
                reason: format!("OAuth token request {}", http::describe(e)),
                retry_after: None,
            })?;
        let status = resp.status().as_u16();
        let text = resp.bytes().await.unwrap_or_default();
        if status != 200 {
            let detail = String::from_utf8_lossy(&text)
                .chars()
                .take(300)
                .collect::<String>();
            let reason = format!("OAuth token endpoint answered {status}: {detail}");
            return Err(if status >= 500 || status == 429 {
                SendError::Transient {
                    status: Some(status),
                    reason,
                    retry_after: None,
                }
            } else {
                SendError::config(Some(status), reason)
            });
        }
        let t: TokenResponse = serde_json::from_slice(&text).map_err(|e| SendError::Transient {
            status: Some(status),
            reason: format!("unreadable OAuth token response: {e}"),
            retry_after: None,
        })?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        // Refresh before expiry: 5 minutes early, or halfway for short-lived tokens.
        let lifetime = Duration::from_secs(t.expires_in);
        let early = (lifetime / 2).min(Duration::from_secs(300));
        let bearer: Arc<str> = format!("Bearer {}", t.access_token).into();
        *self.cached.write().unwrap() = Some((bearer.clone(), Instant::now() + lifetime - early));
        Ok(bearer)
    }
}

//! Helpers for the tests that run the real provider clients against the
//! mock APNs/FCM servers.

use std::path::PathBuf;

use pushrelay::config::{ProviderSettings, Settings};
use pushrelay::mock::{Fault, MockProviders, Rule};
use pushrelay::mock_setup::{write_credentials, MockRoutes};
use sqlx::PgPool;

use super::{settings, APP};

/// A fresh directory for one test's mock credentials.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pushrelay-test-{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Test settings with the app's iOS devices on APNs and Android devices on
/// FCM, both pointing at `mock`.
pub fn settings_for(mock: &MockProviders, name: &str) -> (Settings, MockRoutes) {
    let routes = write_credentials(mock, &temp_dir(name)).unwrap();
    let mut s = settings();
    let app = s.apps.get_mut(APP).unwrap();
    app.ios = Some(ProviderSettings::Apns(routes.apns.clone()));
    app.android = Some(ProviderSettings::Fcm(routes.fcm.clone()));
    (s, routes)
}

/// The mock answers tokens starting with `prefix` with `fault` (the first
/// `times` requests of each, or all).
pub fn rule(prefix: &str, fault: Fault, times: Option<u64>) -> Rule {
    Rule {
        token_prefix: prefix.into(),
        fault,
        times,
    }
}

/// User ids `u<i>` for `range`.
pub fn users(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("u{i}")).collect()
}

/// One notification per user, in one statement (so one fan-out batch).
pub async fn notify_users(pool: &PgPool, users: &[String]) {
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, template, data, collapse_key, ttl_seconds)
         SELECT 'bank', u, 'transfer_received',
                '{\"amount\": \"12.50\", \"currency\": \"EUR\", \"sender\": \"ACME\"}', 'balance', 3600
           FROM unnest($1::text[]) u",
    )
    .bind(users)
    .execute(pool)
    .await
    .unwrap();
}

//! The HTTP API on port 0 against the test's own database, and API keys
//! for it.

use pushrelay::app::App;
use pushrelay::config::Settings;
use pushrelay::store::api_keys::{self, NewKey};
use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};

pub struct TestApi {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    /// Stops the server when the test ends.
    _stop: DropGuard,
}

impl TestApi {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Serves the API (no worker: start one with `common::start` if the test
/// needs sending) on a free loopback port.
pub async fn spawn(pool: &PgPool, mut settings: Settings) -> TestApi {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    settings.api.listen = format!("127.0.0.1:{port}");
    let app = App::with_pool(settings, pool.clone()).expect("app");
    let stop = CancellationToken::new();
    app.serve_api(listener, stop.clone());
    TestApi {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        pool: pool.clone(),
        _stop: stop.drop_guard(),
    }
}

/// A new key with these scopes (and apps); returns its secret.
pub async fn key(pool: &PgPool, scopes: &[&str], apps: Option<&[&str]>) -> String {
    let new = NewKey {
        name: format!("test {}", scopes.join("+")),
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        apps: apps.map(|a| a.iter().map(|s| s.to_string()).collect()),
        rate_per_sec: None,
    };
    api_keys::create(pool, &new).await.expect("create key").1
}

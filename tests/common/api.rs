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

    /// A request with `key`, a JSON body and extra headers, if given: the
    /// status and the body as text.
    pub async fn send(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (reqwest::StatusCode, String) {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            req = req.json(body);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.expect("request");
        (res.status(), res.text().await.expect("body"))
    }

    /// [`TestApi::send`], the body read as JSON: `Null` when empty, the
    /// text as a JSON string when it is not JSON.
    pub async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let (status, text) = self.send(key, method, path, body, headers).await;
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        (status, value)
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

/// The sample lines of `metric` in a Prometheus text body whose labels
/// include every one of `labels` (`name="value"`), with their values.
pub fn samples(body: &str, metric: &str, labels: &[&str]) -> Vec<f64> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| {
            let set = &l[l.find('{').unwrap()..l.rfind('}').unwrap()];
            labels.iter().all(|want| set.contains(want))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

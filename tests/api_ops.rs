//! The operator's routes over real HTTP: `/healthz`, `/readyz` (ready,
//! a paused provider, an old schema, the database going away and coming
//! back) and `/metrics` (queue gauges from the database, a send's
//! attempt counter after the worker delivered it).

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::api::{samples, spawn, TestApi};
use common::*;
use pushrelay::model::{Environment, Platform};
use pushrelay::store::holds::{self, Hold};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

async fn get(api: &TestApi, path: &str) -> (u16, String) {
    let r = api.client.get(api.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_json(api: &TestApi, path: &str) -> (u16, Value) {
    let (status, body) = get(api, path).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}

/// The readiness check named `name` in a `/readyz` body.
/// `pushrelay_metrics_scrape_errors_total` in a scrape (0 before the first).
fn scrape_errors(body: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix("pushrelay_metrics_scrape_errors_total "))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn check<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {body}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {body}"))
}

/// Polls `/readyz` until it answers `want`; the bound only keeps a broken
/// build from hanging.
async fn readyz_until(api: &TestApi, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get_json(api, "/readyz").await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {status} after 30 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn healthz_answers_without_asking_the_database(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    // Even with the pool closed, the process is alive.
    pool.close().await;
    let (status, body) = get_json(&api, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[sqlx::test(migrations = false)]
async fn readyz_is_ready_with_a_current_schema_and_no_pause(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let (status, body) = get_json(&api, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    for name in ["database", "schema", "providers"] {
        assert_eq!(check(&body, name)["ok"], true, "{body}");
    }
}

#[sqlx::test(migrations = false)]
async fn readyz_names_a_paused_provider_until_its_pause_ends(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let mut hold = Hold {
        app: APP.into(),
        platform: Platform::Ios,
        environment: Environment::Production,
        worker: "worker-1".into(),
        kind: "config_error".into(),
        reason: "InvalidProviderToken".into(),
        hint: "check apps.bank.ios.key_id and team_id".into(),
        paused_at: Utc::now(),
        paused_until: Utc::now() + chrono::Duration::hours(1),
    };
    holds::record(&pool, &hold).await.unwrap();

    let (status, body) = get_json(&api, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    let providers = check(&body, "providers");
    assert_eq!(providers["ok"], false);
    let message = providers["message"].as_str().unwrap();
    assert!(
        message.starts_with("bank ios production paused until ")
            && message.contains("InvalidProviderToken")
            && message.contains("check apps.bank.ios.key_id"),
        "{message}"
    );
    assert_eq!(check(&body, "database")["ok"], true, "{body}");

    // The process that opened it ends it (a pause that has run out).
    hold.paused_until = Utc::now() - chrono::Duration::seconds(1);
    holds::record(&pool, &hold).await.unwrap();
    let (status, body) = get_json(&api, "/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[sqlx::test(migrations = false)]
async fn readyz_names_a_schema_older_than_the_binary(_: PgPoolOptions, opts: PgConnectOptions) {
    // Not migrated.
    let pool = PgPoolOptions::new().connect_with(opts).await.unwrap();
    let api = spawn(&pool, settings()).await;
    let (status, body) = get_json(&api, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(check(&body, "database")["ok"], true, "{body}");
    let schema = check(&body, "schema");
    assert_eq!(schema["ok"], false);
    assert!(
        schema["message"]
            .as_str()
            .unwrap()
            .contains("run `pushrelay migrate`"),
        "{body}"
    );
}

/// A TCP proxy to PostgreSQL that can be cut (listener and every
/// connection through it closed) and restored on the same port: a
/// database that goes away for this test's pool only, while the shared
/// server keeps serving the other tests.
struct Proxy {
    port: u16,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Proxy {
            port,
            upstream,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            // Owned by this task: aborting it drops the set, which aborts
            // every forwarded connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        let upstream = upstream.clone();
                        connections.spawn(async move {
                            if let Ok(mut server) = TcpStream::connect(&upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        }));
    }

    /// Closes the port and every connection through it.
    async fn cut(&mut self) {
        let task = self.task.take().expect("the proxy is running");
        task.abort();
        let _ = task.await;
    }

    /// Listens on the same port again.
    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind the proxy's port");
        self.serve(listener);
    }
}

#[sqlx::test(migrations = false)]
async fn readyz_fails_while_the_database_is_down_and_recovers_after(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Migrated directly; the API's pool goes through the proxy.
    let direct = pool(&opts).await;
    let mut proxy = Proxy::start(format!("{}:{}", opts.get_host(), opts.get_port())).await;
    let proxied = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(opts.clone().host("127.0.0.1").port(proxy.port))
        .await
        .unwrap();
    let api = spawn(&proxied, settings()).await;
    let (status, body) = get_json(&api, "/readyz").await;
    assert_eq!(status, 200, "{body}");

    let errors_before = scrape_errors(&get(&api, "/metrics").await.1);
    proxy.cut().await;
    let (status, body) = get_json(&api, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    let database = check(&body, "database");
    assert_eq!(database["ok"], false);
    assert!(
        database["message"]
            .as_str()
            .unwrap()
            .contains("check that PostgreSQL is up"),
        "{body}"
    );
    // Liveness does not depend on the database.
    assert_eq!(get(&api, "/healthz").await.0, 200);
    // Neither does serving the other metrics; the failed read is counted.
    let (status, metrics) = get(&api, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        scrape_errors(&metrics) > errors_before,
        "{errors_before} before: {metrics}"
    );

    proxy.restore().await;
    let body = readyz_until(&api, 200).await;
    assert_eq!(check(&body, "database")["ok"], true, "{body}");
    drop(direct);
}

#[sqlx::test(migrations = false)]
async fn metrics_report_due_deliveries_and_notifications_from_the_database(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    pushrelay::telemetry::prometheus();
    let pool = pool(&opts).await;
    // An app no other test uses: the gauges are the process's.
    let app = "ops-gauges";
    let notification: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO pushrelay.notifications (app, user_id, body, priority, state)
         VALUES ($1, 'u1', 'hello', 'bulk', 'dispatched') RETURNING id",
    )
    .bind(app)
    .fetch_one(&pool)
    .await
    .unwrap();
    // Two deliveries due (one a minute overdue), one not due yet.
    sqlx::query(
        "INSERT INTO pushrelay.deliveries
             (notification_id, device_id, app, platform, priority, expires_at, next_attempt_at)
         SELECT $1, device, $2, 'android', 'bulk', now() + interval '1 day', now() + due_in::interval
           FROM (VALUES (1, '-60 seconds'), (2, '0 seconds'), (3, '1 hour')) v(device, due_in)",
    )
    .bind(notification)
    .bind(app)
    .execute(&pool)
    .await
    .unwrap();
    // A bulk notification due and not fanned out (no worker runs here).
    notify_range(&pool, 1, 2, "bulk").await;
    let api = spawn(&pool, settings()).await;
    let (status, body) = get(&api, "/metrics").await;
    assert_eq!(status, 200);
    let labels = [r#"app="ops-gauges""#, r#"platform="android""#];
    assert_eq!(
        samples(&body, "pushrelay_deliveries_due", &labels),
        vec![2.0],
        "{body}"
    );
    let age = samples(&body, "pushrelay_oldest_due_delivery_age_seconds", &labels);
    assert!(age.len() == 1 && age[0] >= 60.0, "{age:?}\n{body}");
    assert_eq!(
        samples(
            &body,
            "pushrelay_notifications_due",
            &[r#"priority="bulk""#]
        ),
        vec![1.0],
        "{body}"
    );
    // The scrape itself holds a connection of the pool it reports on.
    let pool_connections: f64 = samples(&body, "pushrelay_db_pool_connections", &[])
        .iter()
        .sum();
    assert!(pool_connections >= 1.0, "{body}");

    // Once they are sent, the gauge says so instead of keeping the last
    // value.
    sqlx::query("UPDATE pushrelay.deliveries SET state = 'delivered' WHERE app = $1")
        .bind(app)
        .execute(&pool)
        .await
        .unwrap();
    let (_, body) = get(&api, "/metrics").await;
    assert_eq!(
        samples(&body, "pushrelay_deliveries_due", &labels),
        vec![0.0],
        "{body}"
    );
}

#[sqlx::test(migrations = false)]
async fn metrics_count_a_delivered_send_by_app_provider_and_outcome(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Before the worker starts, so its metrics are recorded.
    pushrelay::telemetry::prometheus();
    let pool = pool(&opts).await;
    add_device(&pool, "u1", Platform::Ios, &ios_token("a1", 1)).await;
    let daemon = start(&pool, settings());
    let api = spawn(&pool, settings()).await;
    notify_range(&pool, 1, 2, "urgent").await;
    wait_for(&pool, DELIVERED, 1).await;
    stop(daemon).await;

    let (status, body) = get(&api, "/metrics").await;
    assert_eq!(status, 200);
    let delivered = samples(
        &body,
        "pushrelay_attempts_total",
        &[
            r#"app="bank""#,
            r#"platform="ios""#,
            r#"provider="simulator""#,
            r#"outcome="delivered""#,
            r#"reason="none""#,
        ],
    );
    assert!(
        delivered.len() == 1 && delivered[0] >= 1.0,
        "{delivered:?}\n{body}"
    );
    // Enqueue → accepted, per app, platform and priority.
    let count = samples(
        &body,
        "pushrelay_enqueue_to_accepted_seconds_count",
        &[r#"app="bank""#, r#"platform="ios""#, r#"priority="urgent""#],
    );
    assert!(count.len() == 1 && count[0] >= 1.0, "{count:?}\n{body}");
    // Provider latency is a histogram with buckets, not a summary.
    assert!(
        body.lines()
            .any(|l| l.starts_with("pushrelay_send_duration_seconds_bucket{")
                && l.contains(r#"app="bank""#)),
        "{body}"
    );
}

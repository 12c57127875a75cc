//! Two `pushrelay run` processes on one database; one is killed with
//! SIGKILL mid-run and PostgreSQL restarts right after. Every delivery must
//! still reach a final state and none may be lost.
//!
//! This restarts the local PostgreSQL cluster (`pg_ctlcluster`), so it is
//! a test binary of its own: cargo runs test binaries one after another.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::{PgPool, Row};
use tokio::process::{Child, Command};

const USERS: i32 = 1000;

fn server_url() -> String {
    // The same server the other tests use (.env), another database.
    let env =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env")).unwrap_or_default();
    std::env::var("DATABASE_URL")
        .ok()
        .or_else(|| {
            env.lines()
                .find_map(|l| l.strip_prefix("DATABASE_URL=").map(str::to_owned))
        })
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn database_url(name: &str) -> String {
    let mut url = reqwest::Url::parse(&server_url()).unwrap();
    url.set_path(name);
    url.to_string()
}

fn daemon(config: &PathBuf, log: &PathBuf) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pushrelay"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start pushrelay run")
}

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster (/etc/postgresql)")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a PostgreSQL version");
    let out = std::process::Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "-m",
            "fast",
        ])
        .output()
        .expect("run pg_ctlcluster");
    assert!(
        out.status.success(),
        "restarting PostgreSQL failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A query's one bigint, retried while the server comes back.
async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match sqlx::query(sql).fetch_one(pool).await {
            Ok(row) => return row.get::<i64, _>(0),
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the database: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
}

async fn wait_until(pool: &PgPool, sql: &str, done: impl Fn(i64) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = scalar(pool, sql).await;
        if done(v) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited 120 s for {what}; last value {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_daemon_and_a_database_restart_lose_nothing() {
    let name = format!("pushrelay_crash_{}", std::process::id());
    let url = database_url(&name);
    pushrelay::store::recreate_database(&url).await.unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    pushrelay::store::migrate(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO pushrelay.devices (app, user_id, platform, token)
         SELECT 'bank', 'u' || i, p,
                CASE p WHEN 'ios' THEN md5('i' || i) || md5('j' || i) ELSE 'android-' || i END
           FROM generate_series(1, $1) i, (VALUES ('ios'), ('android')) v(p)",
    )
    .bind(USERS)
    .execute(&pool)
    .await
    .unwrap();

    let dir = std::env::temp_dir().join(format!("pushrelay-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[database]
url = "{url}"
[worker]
lease_secs = 2
poll_interval_ms = 100
[lanes.ios]
concurrency = 50
[lanes.android]
concurrency = 50
[retry.urgent]
base_ms = 100
min_delay_ms = 10
[templates]
dir = "{templates}"
[telemetry]
level = "warn"
[metrics]
listen = ""
[simulator]
latency_ms = 400
latency_jitter_ms = 100
[apps.bank]
ios = {{ provider = "simulator" }}
android = {{ provider = "simulator" }}
"#,
            templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        ),
    )
    .unwrap();
    let (log_a, log_b) = (dir.join("a.log"), dir.join("b.log"));
    let mut a = daemon(&config, &log_a);
    let mut b = daemon(&config, &log_b);
    wait_until(
        &pool,
        "SELECT count(*) FROM pushrelay.workers",
        |n| n == 2,
        "both daemons to register",
    )
    .await;

    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, body)
         SELECT 'bank', 'u' || i, 'hello' FROM generate_series(1, $1) i",
    )
    .bind(USERS)
    .execute(&pool)
    .await
    .unwrap();
    wait_until(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered'",
        |n| n >= 300,
        "the first deliveries",
    )
    .await;

    let a_pid = a.id().unwrap();
    a.start_kill().unwrap(); // SIGKILL: no cleanup at all
    a.wait().await.unwrap();
    let held_by_a = scalar(
        &pool,
        &format!(
            "SELECT count(*) FROM pushrelay.deliveries d JOIN pushrelay.workers w ON w.id = d.lease_owner
              WHERE d.state = 'sending' AND w.pid = {}",
            a_pid
        ),
    )
    .await;
    restart_postgres();

    wait_until(
        &pool,
        "SELECT (SELECT count(*) FROM pushrelay.notifications WHERE state = 'pending')
              + (SELECT count(*) FROM pushrelay.deliveries WHERE state IN ('pending', 'sending'))",
        |n| n == 0,
        "every delivery to reach a final state",
    )
    .await;
    assert!(
        b.try_wait().unwrap().is_none(),
        "the surviving daemon exited: {}",
        std::fs::read_to_string(&log_b).unwrap_or_default()
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM pushrelay.notifications WHERE state = 'dispatched'"
        )
        .await,
        USERS as i64
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered'"
        )
        .await,
        2 * USERS as i64,
        "every delivery was sent and recorded"
    );
    // What the killed process held came back through the rescuer, each
    // with a `lost` receipt naming it.
    let lost = scalar(
        &pool,
        "SELECT count(*) FROM pushrelay.attempts WHERE outcome = 'lost'",
    )
    .await;
    assert!(
        held_by_a > 0,
        "the killed daemon held no delivery: nothing was tested"
    );
    assert!(
        lost >= held_by_a,
        "{held_by_a} deliveries were held by the killed daemon, {lost} lost receipts"
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM pushrelay.workers").await,
        1,
        "the killed daemon's registration was removed"
    );

    // SIGTERM: the survivor drains and exits cleanly.
    unsafe {
        libc::kill(b.id().unwrap() as i32, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), b.wait())
        .await
        .expect("the daemon stops within 30 s of SIGTERM")
        .unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log_b).unwrap_or_default()
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM pushrelay.workers").await,
        0
    );
    pool.close().await;
    let server = PgPool::connect(&server_url()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&server)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

//! `pushrelay campaigns …` run as the operator runs it: the binary, with
//! the repository's config.toml (app `demo`), on the test's database.
mod common;

use std::path::PathBuf;
use std::process::Output;

use pushrelay::store::campaigns::{self, Context, PumpLimits};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

fn database_url(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    )
}

/// Runs `pushrelay <args>` against the test database.
fn pushrelay(opts: &PgConnectOptions, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pushrelay"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("PUSHRELAY__DATABASE__URL", database_url(opts))
        .args(args)
        .output()
        .unwrap()
}

/// Runs it, expecting success; returns stdout.
fn ok(opts: &PgConnectOptions, args: &[&str]) -> String {
    let out = pushrelay(opts, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs it, expecting failure; returns stderr.
fn fails(opts: &PgConnectOptions, args: &[&str]) -> String {
    let out = pushrelay(opts, args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// The `column` of the progress table's row `name`.
fn cell(table: &str, name: &str, column: &str) -> i64 {
    let header: Vec<&str> = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some("platform"))
        .unwrap_or_else(|| panic!("no header in:\n{table}"))
        .split_whitespace()
        .collect();
    let at = header
        .iter()
        .position(|h| *h == column)
        .unwrap_or_else(|| panic!("no column {column} in:\n{table}"));
    row(table, name)[at - 1]
}

/// The numbers of the table row starting with `name`.
fn row(table: &str, name: &str) -> Vec<i64> {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} row in:\n{table}"));
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

/// Users u1…u10 of app `demo`, each with an iOS and an Android device;
/// u1…u6 consent to marketing, the others said no.
async fn seed(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO pushrelay.devices (app, user_id, platform, token, timezone, consent)
         SELECT 'demo', 'u' || i, p,
                CASE p WHEN 'ios' THEN md5('i' || i) || md5('j' || i) ELSE 'android-' || i END,
                (ARRAY['Europe/Berlin', 'America/New_York', 'Asia/Tokyo'])[1 + i % 3],
                CASE WHEN i <= 6 THEN '{\"marketing\": true}' ELSE '{\"marketing\": false}' END::jsonb
           FROM generate_series(1, 10) i, (VALUES ('ios'), ('android')) v(p)",
    )
    .execute(pool)
    .await
    .unwrap();
}

fn csv(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pushrelay-cli-campaigns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[sqlx::test(migrations = false)]
async fn campaigns_are_previewed_created_shown_and_controlled(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    seed(&pool).await;

    // Preview: iOS devices that consent to marketing; the others counted.
    let table = ok(
        &opts,
        &[
            "campaigns",
            "preview",
            "--app",
            "demo",
            "--segment",
            r#"{"platforms": ["ios"]}"#,
            "--category",
            "marketing",
        ],
    );
    assert_eq!(row(&table, "ios"), [6, 6, 4], "{table}");
    assert_eq!(row(&table, "total"), [6, 6, 4], "{table}");
    assert!(!table.contains("android"), "{table}");

    // A CSV of users, uploaded by the preview, in JSON.
    let users = csv("users.csv", "user_id\nu1\nu2\nu3\nu4\nu4\nnobody\n");
    let users = users.to_str().unwrap();
    let out = pushrelay(
        &opts,
        &[
            "campaigns",
            "preview",
            "--app",
            "demo",
            "--users",
            users,
            "--json",
        ],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("uploaded user list"));
    let reach: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reach["users"], 4);
    assert_eq!(reach["devices"], 8);
    assert_eq!(reach["by_platform"]["android"]["devices"], 4);

    // Create: the list intersected with a segment, later, throttled.
    let out = ok(
        &opts,
        &[
            "campaigns",
            "create",
            "--app",
            "demo",
            "--name",
            "Black Friday",
            "--title",
            "Sale",
            "--body",
            "50 % off today",
            "--data",
            r#"{"deeplink": "bank://offers"}"#,
            "--segment",
            r#"{"platforms": ["android"]}"#,
            "--users",
            users,
            "--category",
            "marketing",
            "--at",
            "2099-01-01T09:00:00Z",
            "--throttle",
            "60",
            "--ttl",
            "3600",
        ],
    );
    let id: Uuid = out.lines().next().unwrap().parse().expect("the id first");
    assert!(
        out.contains("scheduled, starts 2099-01-01 09:00:00 UTC"),
        "{out}"
    );
    assert_eq!(row(&out, "android"), [4, 4, 0], "{out}");
    let (state, throttle, ttl, title, list_users, created_by): (
        String,
        Option<i32>,
        i32,
        Option<String>,
        i64,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT c.state, c.throttle_per_minute, c.ttl_seconds, c.title,
                (SELECT count(*) FROM pushrelay.user_list_members m WHERE m.list_id = c.user_list_id),
                c.created_by
           FROM pushrelay.campaigns c WHERE c.id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), throttle, ttl, title.as_deref(), list_users),
        ("scheduled", Some(60), 3600, Some("Sale"), 5)
    );
    assert!(created_by.unwrap().starts_with("cli"));

    // Show, piped: printed once.
    let shown = ok(&opts, &["campaigns", "show", &id.to_string()]);
    for expected in [
        "\"Black Friday\"",
        "state=scheduled",
        "throttle 60 devices/min",
        "consent category marketing",
        "∩ user list",
        "ETA starts 2099-01-01 09:00:00 UTC",
    ] {
        assert!(shown.contains(expected), "no {expected:?} in:\n{shown}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(
        &opts,
        &["campaigns", "show", &id.to_string(), "--json"],
    ))
    .unwrap();
    assert_eq!(json["state"], "scheduled");
    assert_eq!(json["progress"]["targeted"], 0);
    let listed = ok(&opts, &["campaigns", "list", "--app", "demo"]);
    assert!(
        listed.contains(&id.to_string()) && listed.contains("Black Friday"),
        "{listed}"
    );

    // Pause, resume and cancel print the new state; each is idempotent.
    let id = id.to_string();
    for (verb, state) in [
        ("pause", "paused"),
        ("pause", "paused"),
        ("resume", "scheduled"),
        ("resume", "scheduled"),
        ("cancel", "cancelled"),
        ("cancel", "cancelled"),
    ] {
        let out = ok(&opts, &["campaigns", verb, &id]);
        assert!(out.trim_end().ends_with(&format!("is {state}")), "{out}");
        let stored: String =
            sqlx::query_scalar("SELECT state FROM pushrelay.campaigns WHERE id = $1::uuid")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(stored, state, "after {verb}");
    }
    let err = fails(&opts, &["campaigns", "resume", &id]);
    assert!(err.contains("is cancelled; it cannot be resumed"), "{err}");
    let unknown = Uuid::new_v4().to_string();
    assert!(
        fails(&opts, &["campaigns", "show", &unknown]).contains(&format!("no campaign {unknown}"))
    );
}

#[sqlx::test(migrations = false)]
async fn bad_input_is_refused_with_the_stores_messages(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = common::pool(&opts).await;
    seed(&pool).await;
    let create = |extra: &[&str]| {
        let mut args = vec![
            "campaigns",
            "create",
            "--app",
            "demo",
            "--name",
            "x",
            "--body",
            "hi",
        ];
        args.extend_from_slice(extra);
        fails(&opts, &args)
    };
    assert!(create(&[]).contains("the audience is empty"));
    assert!(create(&["--segment", r#"{"platform": ["ios"]}"#]).contains("unknown field `platform`"));
    assert!(create(&[
        "--segment",
        r#"{"all": true}"#,
        "--at",
        "2020-01-01T00:00:00Z"
    ])
    .contains("the schedule is in the past"));
    let err = create(&[
        "--segment",
        r#"{"all": true}"#,
        "--throttle",
        "1",
        "--ttl",
        "60",
    ]);
    assert!(
        err.contains("the TTL is too short for the throttle"),
        "{err}"
    );
    assert!(create(&["--segment", r#"{"tags_any": ["vip"]}"#]).contains("reaches no device"));
    assert!(
        create(&["--segment", r#"{"all": true}"#, "--data", "[1"]).contains("--data is not JSON")
    );
    assert!(fails(
        &opts,
        &[
            "campaigns",
            "create",
            "--app",
            "nope",
            "--name",
            "x",
            "--body",
            "hi"
        ]
    )
    .contains("unknown app \"nope\""));
    assert_eq!(
        common::count(&pool, "SELECT count(*) FROM pushrelay.campaigns").await,
        0
    );
    // A local-time schedule is stored as such.
    let out = ok(
        &opts,
        &[
            "campaigns",
            "create",
            "--app",
            "demo",
            "--name",
            "morning",
            "--body",
            "hi",
            "--segment",
            r#"{"timezones": ["Asia/Tokyo"]}"#,
            "--local-time",
            "09:00",
            "--date",
            "2099-06-01",
        ],
    );
    let id: Uuid = out.lines().next().unwrap().parse().unwrap();
    let shown = ok(&opts, &["campaigns", "show", &id.to_string()]);
    assert!(
        shown.contains("09:00 local time on 2099-06-01 in each device's timezone"),
        "{shown}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_finished_campaign_shows_its_deliveries(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = common::pool(&opts).await;
    seed(&pool).await;
    let out = ok(
        &opts,
        &[
            "campaigns",
            "create",
            "--app",
            "demo",
            "--name",
            "everyone",
            "--body",
            "hi",
            "--segment",
            r#"{"all": true}"#,
            "--category",
            "marketing",
        ],
    );
    let id: Uuid = out.lines().next().unwrap().parse().unwrap();
    // The daemon's pump and worker, as in the repository's config (the
    // simulator for both platforms of `demo`).
    let mut settings = common::settings();
    let app = settings.apps.remove(common::APP).unwrap();
    settings.apps.insert("demo".into(), app);
    let ctx = Context {
        routes: vec!["demo/ios".into(), "demo/android".into()],
        ..Context::default()
    };
    let limits = PumpLimits {
        batch: 1000,
        backlog: 1000,
        evaluate_chunk: 1000,
    };
    campaigns::pump(&pool, &ctx, limits, chrono::Utc::now())
        .await
        .unwrap();
    let running = common::start(&pool, settings);
    common::wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered'",
        12,
    )
    .await;
    common::stop(running).await;
    campaigns::pump(&pool, &ctx, limits, chrono::Utc::now())
        .await
        .unwrap();

    let shown = ok(&opts, &["campaigns", "show", &id.to_string()]);
    assert!(shown.contains("state=completed"), "{shown}");
    for (platform, targeted, no_consent) in [("ios", 6, 4), ("android", 6, 4), ("total", 12, 8)] {
        assert_eq!(cell(&shown, platform, "targeted"), targeted, "{shown}");
        assert_eq!(cell(&shown, platform, "no_consent"), no_consent, "{shown}");
        assert_eq!(cell(&shown, platform, "sent"), targeted, "{shown}");
        assert_eq!(cell(&shown, platform, "delivered"), targeted, "{shown}");
        for column in [
            "scheduled",
            "queued",
            "failed",
            "expired",
            "cancelled",
            "opened",
        ] {
            assert_eq!(cell(&shown, platform, column), 0, "{column}: {shown}");
        }
    }
    assert!(shown.contains("ETA done; finished"), "{shown}");
    // --watch on a finished campaign draws nothing and returns at once.
    let watched = ok(&opts, &["campaigns", "show", "--watch", &id.to_string()]);
    assert!(watched.contains("state=completed"), "{watched}");
}

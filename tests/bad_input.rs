//! Bad input of every kind gets a clear error at insert time or a recorded
//! permanent failure, and the daemon keeps delivering everything else.

mod common;

use common::*;
use pushrelay::model::{Environment, Platform};
use pushrelay::store::devices::{self, NewDevice};
use pushrelay::store::notifications::{self as outbox, NewNotification, OutboxError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

async fn insert_error(pool: &PgPool, sql: &str) -> String {
    sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .expect_err("the insert must be refused")
        .to_string()
}

#[sqlx::test(migrations = false)]
async fn malformed_rows_are_refused_in_the_producers_transaction(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let cases = [
        ("INSERT INTO pushrelay.notifications (app, user_id, template, data) VALUES ('bank', 'u', 't', '{\"amount\": ')",
         "invalid input syntax for type json"),
        ("INSERT INTO pushrelay.notifications (app, user_id, template, data) VALUES ('bank', 'u', 't', '[1, 2]')",
         "notifications_data_must_be_a_json_object"),
        (&format!("INSERT INTO pushrelay.notifications (app, user_id, template, data) VALUES ('bank', 'u', 't', '{{\"x\": \"{}\"}}')", "y".repeat(5000)),
         "notifications_data_at_most_4096_bytes"),
        ("INSERT INTO pushrelay.notifications (app, template) VALUES ('bank', 't')",
         "notifications_recipient_is_user_or_devices"),
        ("INSERT INTO pushrelay.notifications (app, user_id) VALUES ('bank', 'u')",
         "notifications_needs_template_or_body"),
        ("INSERT INTO pushrelay.notifications (app, user_id, body, priority) VALUES ('bank', 'u', 'b', 'high')",
         "notifications_priority_is_urgent_or_bulk"),
        ("INSERT INTO pushrelay.notifications (app, user_id, body, ttl_seconds) VALUES ('bank', 'u', 'b', 3000000)",
         "notifications_ttl_between_0_and_28_days"),
    ];
    for (sql, expected) in cases {
        let err = insert_error(&pool, sql).await;
        assert!(err.contains(expected), "{sql}\n → {err}");
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.notifications").await,
        0
    );

    // The library API names the problem before it reaches the database.
    let err = outbox::enqueue(
        &pool,
        &NewNotification {
            app: APP.into(),
            user_id: Some("u".into()),
            template: Some("t".into()),
            data: serde_json::json!([1]),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, OutboxError::BadData(_)), "{err}");

    // Garbage tokens are refused at registration, and the error masks them.
    let garbage = "this is not an apns token at all, it has spaces in it!!";
    let err = devices::register(
        &pool,
        &NewDevice {
            app: APP,
            user_id: "u",
            platform: Platform::Ios,
            token: garbage,
            environment: Environment::Production,
            locale: "en",
            timezone: "UTC",
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("hex digits") && !err.contains(garbage),
        "{err}"
    );
}

#[sqlx::test(migrations = false)]
async fn bad_notifications_fail_with_a_reason_and_the_daemon_keeps_running(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_device(&pool, "u1", Platform::Android, "android-token-u1").await;
    let daemon = start(&pool, settings());

    let long_body = "x".repeat(5000);
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, template, body, data, idempotency_key) VALUES
            ('nope', 'u1', NULL, 'hi', '{}', 'unknown-app'),
            ('bank', 'u1', 'no_such_template', NULL, '{}', 'unknown-template'),
            ('bank', 'u1', 'transfer_received', NULL, '{\"currency\": \"EUR\"}', 'missing-variable'),
            ('bank', 'u1', NULL, $1, '{}', 'oversized')",
    )
    .bind(&long_body)
    .execute(&pool)
    .await
    .unwrap();
    wait_for(&pool, OPEN, 0).await;

    let reason = |key: &'static str| {
        let pool = pool.clone();
        async move {
            let row: (String, Option<String>, Option<String>) = sqlx::query_as(
                "SELECT n.state, n.state_reason, d.last_error FROM pushrelay.notifications n
                   LEFT JOIN pushrelay.deliveries d ON d.notification_id = n.id
                  WHERE n.idempotency_key = $1",
            )
            .bind(key)
            .fetch_one(&pool)
            .await
            .unwrap();
            row
        }
    };
    let (state, why, _) = reason("unknown-app").await;
    assert_eq!(state, "failed");
    assert!(why.unwrap().contains("unknown app 'nope'"));
    let (_, _, err) = reason("unknown-template").await;
    assert!(err
        .unwrap()
        .contains("unknown template \"no_such_template\""));
    let (_, _, err) = reason("missing-variable").await;
    let err = err.unwrap();
    assert!(
        err.contains("\"amount\"") && err.contains("\"sender\""),
        "{err}"
    );
    let (_, _, err) = reason("oversized").await;
    assert!(err.unwrap().contains("PayloadTooLarge"));
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'failed'"
        )
        .await,
        3
    );

    // Still running: a good notification goes through.
    sqlx::query("INSERT INTO pushrelay.notifications (app, user_id, body) VALUES ('bank', 'u1', 'still here')")
        .execute(&pool)
        .await
        .unwrap();
    wait_for(&pool, DELIVERED, 1).await;
    stop(daemon).await;
}

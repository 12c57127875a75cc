//! The outbox contract as producers see it: the README's INSERT, rollback,
//! idempotency, scheduling and expiry, and bad input at insert time.

mod common;

use common::*;
use pushrelay::model::Platform;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The INSERT exactly as the README shows it, between its markers.
fn readme_insert() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- outbox-insert -->")
        .expect("README marker");
    let block = &readme[start..];
    let sql_start = block.find("```sql\n").expect("sql block") + "```sql\n".len();
    let sql_end = block[sql_start..].find("```").unwrap() + sql_start;
    block[sql_start..sql_end].to_owned()
}

/// The README's example recipient has an iPhone, an Android phone and an
/// old, invalidated iPhone.
async fn readme_recipient(pool: &PgPool) -> (i64, i64, i64) {
    let a = add_device(pool, "user-4711", Platform::Ios, &ios_token("a1", 1)).await;
    let b = add_device(
        pool,
        "user-4711",
        Platform::Android,
        "fcm-token-of-user-4711",
    )
    .await;
    let c = add_device(pool, "user-4711", Platform::Ios, &ios_token("a1", 2)).await;
    pushrelay::store::devices::remove(pool, c).await.unwrap();
    (a, b, c)
}

#[sqlx::test(migrations = false)]
async fn readme_insert_in_a_committed_transaction_reaches_every_active_device(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let (ios, android, old) = readme_recipient(&pool).await;
    let daemon = start(&pool, settings());

    // The producer's own write and the notification commit together.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("CREATE TEMP TABLE transfers (id int)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO transfers VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql(&readme_insert())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    wait_for(&pool, DELIVERED, 2).await;
    let mut devices: Vec<i64> =
        sqlx::query_scalar("SELECT device_id FROM pushrelay.deliveries ORDER BY device_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    devices.sort();
    assert_eq!(devices, vec![ios, android]);
    assert!(
        !devices.contains(&old),
        "an invalidated device must be skipped"
    );
    let simulator = daemon.providers.simulator().unwrap();
    assert_eq!(simulator.attempts_for(&ios_token("a1", 1)), 1);
    assert_eq!(simulator.attempts_for("fcm-token-of-user-4711"), 1);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn readme_insert_in_a_rolled_back_transaction_sends_nothing(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    readme_recipient(&pool).await;
    let daemon = start(&pool, settings());

    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql(&readme_insert())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    // A committed notification afterwards proves the daemon was running
    // and would have picked the first one up.
    pushrelay::store::notifications::enqueue(
        &pool,
        &pushrelay::store::notifications::NewNotification {
            app: APP.into(),
            user_id: Some("someone-else".into()),
            body: Some("marker".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.notifications WHERE state <> 'pending'",
        1,
    )
    .await;
    wait_for(&pool, OPEN, 0).await;

    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.notifications").await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.deliveries").await,
        0
    );
    assert_eq!(daemon.providers.simulator().unwrap().requests(), 0);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn the_same_idempotency_key_twice_is_one_notification(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    readme_recipient(&pool).await;
    sqlx::raw_sql(&readme_insert())
        .execute(&pool)
        .await
        .unwrap();
    // The retried producer transaction must not fail: ON CONFLICT DO NOTHING.
    sqlx::raw_sql(&readme_insert())
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.notifications").await,
        1
    );

    let daemon = start(&pool, settings());
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(count(&pool, DELIVERED).await, 2);
    assert_eq!(daemon.providers.simulator().unwrap().requests(), 2);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn scheduled_notifications_wait_and_expired_ones_are_never_sent(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_device(&pool, "u1", Platform::Android, "android-token-u1").await;
    let daemon = start(&pool, settings());

    sqlx::raw_sql(
        "INSERT INTO pushrelay.notifications (app, user_id, body, send_at, idempotency_key)
         VALUES ('bank', 'u1', 'later', now() + interval '2 seconds', 'scheduled');
         INSERT INTO pushrelay.notifications (app, user_id, body, send_at, ttl_seconds, idempotency_key)
         VALUES ('bank', 'u1', 'too late', now() - interval '2 minutes', 60, 'expired');",
    )
    .execute(&pool)
    .await
    .unwrap();

    wait_for(&pool, "SELECT count(*) FROM pushrelay.notifications WHERE idempotency_key = 'expired' AND state = 'expired'", 1).await;
    let early: i64 = count(
        &pool,
        "SELECT count(*) FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id
           JOIN pushrelay.notifications n ON n.id = d.notification_id
          WHERE n.idempotency_key = 'scheduled' AND a.started_at < n.send_at",
    )
    .await;
    assert_eq!(early, 0);
    wait_for(&pool, DELIVERED, 1).await;
    let sent_after_send_at: i64 = count(
        &pool,
        "SELECT count(*) FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id
           JOIN pushrelay.notifications n ON n.id = d.notification_id
          WHERE n.idempotency_key = 'scheduled' AND a.started_at >= n.send_at AND a.outcome = 'delivered'",
    )
    .await;
    assert_eq!(sent_after_send_at, 1);
    // The expired one never produced a delivery or reached the provider.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.deliveries d JOIN pushrelay.notifications n ON n.id = d.notification_id WHERE n.idempotency_key = 'expired'").await,
        0
    );
    assert_eq!(daemon.providers.simulator().unwrap().requests(), 1);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_delivery_that_expires_while_waiting_for_a_retry_is_never_sent_again(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    // Rate limited with Retry-After: 1 s, but the message lives 1 s.
    let token = ios_token("ca11", 7);
    add_device(&pool, "u1", Platform::Ios, &token).await;
    let daemon = start(&pool, settings());
    sqlx::raw_sql("INSERT INTO pushrelay.notifications (app, user_id, template, data, ttl_seconds)
                   VALUES ('bank', 'u1', 'one_time_code', '{\"code\": \"123 456\", \"minutes\": 1}', 1)")
        .execute(&pool)
        .await
        .unwrap();
    wait_for(&pool, OPEN, 0).await;
    let (state, err): (String, String) =
        sqlx::query_as("SELECT state, last_error FROM pushrelay.deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "expired");
    assert!(err.contains("too late"), "{err}");
    assert_eq!(
        daemon.providers.simulator().unwrap().attempts_for(&token),
        1
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn devices_on_a_platform_the_app_does_not_send_to_get_no_delivery(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_device(&pool, "u1", Platform::Android, "android-token-u1").await;
    let mut s = settings();
    s.apps.get_mut(APP).unwrap().android = None; // this app only sends to iOS
    let daemon = start(&pool, s);
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, body) VALUES ('bank', 'u1', 'hi')",
    )
    .execute(&pool)
    .await
    .unwrap();
    wait_for(&pool, OPEN, 0).await;
    let (state, reason): (String, String) =
        sqlx::query_as("SELECT state, state_reason FROM pushrelay.notifications")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "no_devices");
    assert!(reason.contains("platform this app sends to"), "{reason}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.deliveries").await,
        0
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn retention_deletes_old_finished_notifications_with_everything_they_left(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    use pushrelay::store::{history, receipts};

    let pool = pool(&opts).await;
    let device = add_device(&pool, "u-old", Platform::Ios, &ios_token("0d", 1)).await;
    let daemon = start(&pool, settings());
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(
            pushrelay::store::notifications::enqueue(
                &pool,
                &pushrelay::store::notifications::NewNotification {
                    app: APP.into(),
                    user_id: Some("u-old".into()),
                    body: Some("statement ready".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        );
    }
    wait_for(&pool, DELIVERED, 2).await;
    stop(daemon).await;
    for &id in &ids {
        receipts::record(
            &pool,
            &receipts::Report {
                notification_id: id,
                device_id: device,
                event: receipts::Event::Opened,
                occurred_at: None,
            },
            None,
        )
        .await
        .unwrap();
    }
    sqlx::query(
        "UPDATE pushrelay.notifications SET created_at = now() - interval '40 days' WHERE id = $1",
    )
    .bind(ids[0])
    .execute(&pool)
    .await
    .unwrap();

    assert_eq!(history::clean(&pool, 30, 100).await.unwrap(), 1);
    for (table, column) in [
        ("notifications", "id"),
        ("deliveries", "notification_id"),
        ("device_receipts", "notification_id"),
    ] {
        let left = |id: uuid::Uuid| {
            let pool = pool.clone();
            let sql = format!("SELECT count(*) FROM pushrelay.{table} WHERE {column} = $1");
            async move {
                sqlx::query_scalar::<_, i64>(&sql)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(left(ids[0]).await, 0, "old {table} rows are gone");
        assert_eq!(left(ids[1]).await, 1, "recent {table} rows stay");
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.attempts").await,
        1,
        "only the recent delivery's receipt is left"
    );
}

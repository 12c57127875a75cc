//! Outcome classification and the retry path, end to end through the
//! daemon and the simulator.

mod common;

use common::*;
use pushrelay::model::Platform;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn notify(pool: &sqlx::PgPool, user: &str) {
    sqlx::query("INSERT INTO pushrelay.notifications (app, user_id, template, data) VALUES ('bank', $1, 'transfer_received', '{\"amount\": \"1.00\", \"currency\": \"EUR\", \"sender\": \"T\"}')")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn transient_failures_are_retried_with_growing_jittered_delays_then_delivered(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    // fa11… tokens fail 4 times with 503, then succeed.
    add_ios_users(&pool, "fa11", 20).await;
    let mut s = settings();
    s.worker.breaker_threshold = 1000; // 80 failures in a row are the point here
    let daemon = start(&pool, s);
    for i in 0..20 {
        notify(&pool, &format!("u{i}")).await;
    }
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered' AND attempts = 5"
        )
        .await,
        20
    );

    // (attempt, scheduled delay ms, actual gap ms) per retry.
    let rows: Vec<(i32, f64, f64)> = sqlx::query_as(
        "SELECT a.attempt,
                (extract(epoch FROM a.retry_at - a.finished_at) * 1000)::float8,
                (extract(epoch FROM b.started_at - a.finished_at) * 1000)::float8
           FROM pushrelay.attempts a
           JOIN pushrelay.attempts b ON b.delivery_id = a.delivery_id AND b.attempt = a.attempt + 1
          WHERE a.outcome = 'transient'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 80);
    let schedule = settings().retry.urgent;
    for &(attempt, scheduled, gap) in &rows {
        let ceiling = schedule.ceiling(attempt as u32).as_millis() as f64;
        assert!(
            scheduled >= schedule.min_delay_ms as f64 - 1.0 && scheduled <= ceiling + 1.0,
            "retry after attempt {attempt} scheduled {scheduled} ms, outside [min, {ceiling}]"
        );
        assert!(
            gap + 1.0 >= scheduled,
            "retry sent {gap} ms after the failure, before its time ({scheduled} ms)"
        );
    }
    let mean = |n: i32| {
        let d: Vec<f64> = rows.iter().filter(|r| r.0 == n).map(|r| r.1).collect();
        d.iter().sum::<f64>() / d.len() as f64
    };
    assert!(
        mean(4) > mean(1) * 2.0,
        "delays must grow: mean after attempt 1 {} ms, after 4 {} ms",
        mean(1),
        mean(4)
    );
    let mut third: Vec<i64> = rows
        .iter()
        .filter(|r| r.0 == 3)
        .map(|r| r.1 as i64)
        .collect();
    third.sort();
    third.dedup();
    assert!(
        third.len() >= 10,
        "20 simultaneous failures must not retry in lockstep: {third:?}"
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn retry_after_is_honoured(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let token = ios_token("ca11", 1); // 429 with Retry-After: 1 once
    add_device(&pool, "u1", Platform::Ios, &token).await;
    let daemon = start(&pool, settings());
    notify(&pool, "u1").await;
    wait_for(&pool, OPEN, 0).await;
    let (status, gap_ms): (i32, f64) = sqlx::query_as(
        "SELECT a.status_code, (extract(epoch FROM b.started_at - a.finished_at) * 1000)::float8
           FROM pushrelay.attempts a JOIN pushrelay.attempts b ON b.delivery_id = a.delivery_id AND b.attempt = 2
          WHERE a.attempt = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, 429);
    assert!(
        gap_ms >= 1000.0,
        "retried {gap_ms} ms after a Retry-After of 1 s"
    );
    assert_eq!(count(&pool, DELIVERED).await, 1);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_permanent_failure_is_not_retried(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let token = ios_token("bad0", 1);
    add_device(&pool, "u1", Platform::Ios, &token).await;
    let daemon = start(&pool, settings());
    notify(&pool, "u1").await;
    wait_for(&pool, OPEN, 0).await;
    let (state, attempts, err): (String, i32, String) =
        sqlx::query_as("SELECT state, attempts, last_error FROM pushrelay.deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    assert!(err.contains("BadCollapseId"), "{err}");
    // Give a wrongly scheduled retry the chance to happen before checking.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        daemon.providers.simulator().unwrap().attempts_for(&token),
        1
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_dead_token_invalidates_the_device_and_the_next_notification_skips_it(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let dead = ios_token("dead", 1);
    let dead_id = add_device(&pool, "u1", Platform::Ios, &dead).await;
    let alive_id = add_device(&pool, "u1", Platform::Android, "android-token-alive").await;
    let daemon = start(&pool, settings());
    notify(&pool, "u1").await;
    wait_for(&pool, OPEN, 0).await;
    let (invalidated, reason): (bool, Option<String>) = sqlx::query_as(
        "SELECT invalidated_at IS NOT NULL, invalidated_reason FROM pushrelay.devices WHERE id = $1",
    )
    .bind(dead_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(invalidated);
    assert!(reason.unwrap().contains("Unregistered"));

    notify(&pool, "u1").await;
    wait_for(&pool, OPEN, 0).await;
    let second: Vec<i64> = sqlx::query_scalar(
        "SELECT device_id FROM pushrelay.deliveries d JOIN pushrelay.notifications n ON n.id = d.notification_id
          ORDER BY n.created_at DESC, d.id LIMIT 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(second, vec![alive_id]);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.deliveries").await,
        3
    );
    assert_eq!(daemon.providers.simulator().unwrap().attempts_for(&dead), 1);

    // Support's view names the outcome and never shows the whole token.
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT notification_id FROM pushrelay.deliveries WHERE device_id = $1")
            .bind(dead_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let report = pushrelay::store::status::load(&pool, id).await.unwrap();
    let json = serde_json::to_string(&report).unwrap();
    let table = pushrelay::cli::render_table(&report);
    assert!(
        table.contains("token_dead") && table.contains("Unregistered"),
        "{table}"
    );
    assert!(!json.contains(&dead) && !table.contains(&dead));

    // Re-registering the token reactivates the device.
    add_device(&pool, "u1", Platform::Ios, &dead).await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.devices WHERE invalidated_at IS NULL"
        )
        .await,
        2
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn rejected_credentials_pause_the_app_without_burning_attempts(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let token = ios_token("c0f1", 1); // 403 InvalidProviderToken
    add_device(&pool, "u1", Platform::Ios, &token).await;
    let daemon = start(&pool, settings());
    notify(&pool, "u1").await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.attempts WHERE outcome = 'config_error'",
        1,
    )
    .await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'pending' AND lease_owner IS NULL",
        1,
    )
    .await;
    let (attempts, paused_for): (i32, f64) = sqlx::query_as(
        "SELECT attempts, extract(epoch FROM next_attempt_at - now())::float8 FROM pushrelay.deliveries",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        attempts, 0,
        "a credential error must not use up the delivery's attempts"
    );
    assert!(
        paused_for > 20.0,
        "the app's sends pause (config_error_pause_secs = 30), got {paused_for} s"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        daemon.providers.simulator().unwrap().attempts_for(&token),
        1
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_provider_failing_everything_trips_the_breaker(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    add_ios_users(&pool, "fa11", 10).await;
    let mut s = settings();
    s.worker.breaker_threshold = 5;
    s.worker.breaker_cooldown_secs = 30;
    let daemon = start(&pool, s);
    for i in 0..10 {
        notify(&pool, &format!("u{i}")).await;
    }
    wait_for(
        &pool,
        "SELECT least(count(*), 5) FROM pushrelay.attempts",
        5,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // sends already in flight land
    let simulator = daemon.providers.simulator().unwrap();
    let seen = simulator.requests();
    // Retries are due within 100 ms, but the app is on hold for 30 s.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        simulator.requests(),
        seen,
        "the breaker should hold the app's sends"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'pending'"
        )
        .await,
        10
    );
    // Their retries were due within 100 ms; the hold handed them back
    // due when the breaker's cooldown ends instead.
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE next_attempt_at > now() + interval '10 seconds'",
        10,
    )
    .await;
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_provider_that_never_answers_times_out_is_retried_and_given_up(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    add_device(&pool, "u1", Platform::Ios, &ios_token("510e", 1)).await; // never answers
    let mut s = settings();
    s.worker.send_timeout_ms = 200;
    s.retry.urgent.max_attempts = 3;
    let daemon = start(&pool, s);
    notify(&pool, "u1").await;
    wait_for(&pool, OPEN, 0).await;
    let (state, attempts, err): (String, i32, String) =
        sqlx::query_as("SELECT state, attempts, last_error FROM pushrelay.deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempts), ("failed", 3));
    assert!(
        err.contains("gave up after 3 attempts") && err.contains("no answer within 200 ms"),
        "{err}"
    );
    let timeouts = count(
        &pool,
        "SELECT count(*) FROM pushrelay.attempts WHERE outcome = 'transient' AND latency_ms >= 200",
    )
    .await;
    assert_eq!(timeouts, 3);
    stop(daemon).await;
}

//! Core guarantees of the worker: a panic costs neither a send slot nor a
//! delivery, urgent notifications overtake a bulk backlog, and a write
//! stall longer than the lease sends nothing twice and loses nothing.

mod common;

use std::time::Duration;

use common::*;
use pushrelay::config::{Behaviour, SimulatorRule};
use pushrelay::model::Platform;
use pushrelay::providers::Providers;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Users `u0`… with one Android device each whose token starts with `prefix`.
async fn android_users(pool: &PgPool, prefix: &str, n: u32) {
    sqlx::query(
        "INSERT INTO pushrelay.devices (app, user_id, platform, token)
         SELECT 'bank', 'u' || i, 'android', $1 || lpad(i::text, 8, '0')
           FROM generate_series(0, $2 - 1) i",
    )
    .bind(prefix)
    .bind(n as i32)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_provider_that_panics_costs_no_slot_and_no_delivery(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    // 40 devices whose first send panics, then 30 ordinary ones.
    android_users(&pool, "panic-", 40).await;
    for i in 40..70 {
        add_device(
            &pool,
            &format!("u{i}"),
            Platform::Android,
            &format!("calm-{i:08}"),
        )
        .await;
    }
    let mut s = settings();
    s.lanes.android.concurrency = 10;
    // Every send takes 100 ms, so sends overlap and fill the slots; a
    // panicking one panics after that.
    s.simulator.latency_ms = 100;
    s.simulator.latency_jitter_ms = 0;
    s.simulator.rules.push(SimulatorRule {
        token_prefix: "panic-".into(),
        behaviour: Behaviour::Panic,
        times: Some(1),
        retry_after_secs: None,
    });
    let daemon = start(&pool, s);
    let simulator = daemon.providers.simulator().unwrap().clone();

    // Four times more panics than slots: a slot lost per panic would stall
    // the lane long before the end.
    notify_range(&pool, 0, 40, "urgent").await;
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered' AND tries = 2"
        )
        .await,
        40
    );
    let reasons: Vec<(String, String)> = sqlx::query_as(
        "SELECT outcome, reason FROM pushrelay.attempts WHERE attempt = 1 ORDER BY delivery_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(reasons.len(), 40);
    for (outcome, reason) in &reasons {
        assert_eq!(outcome, "transient");
        assert!(reason.contains("the send panicked"), "{reason}");
    }

    // The same worker still has every slot: 30 more sends fill all 10 at
    // once (a slot lost to a panic would cap them lower).
    simulator.reset_peak();
    notify_range(&pool, 40, 70, "urgent").await;
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(simulator.peak_in_flight(), 10);
    assert_eq!(count(&pool, DELIVERED).await, 70);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'sending' OR lease_owner IS NOT NULL"
        )
        .await,
        0
    );
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn an_urgent_notification_overtakes_a_bulk_backlog(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    android_users(&pool, "device-", 2001).await;
    // A bulk backlog queued first, draining slowly: 10 bulk slots of 20,
    // 20 ms a send.
    notify_range(&pool, 0, 2000, "bulk").await;
    let mut s = settings();
    s.lanes.android.concurrency = 20;
    s.lanes.android.bulk_share = 0.5;
    s.worker.fanout_batch = 50;
    s.simulator.latency_ms = 20;
    s.simulator.latency_jitter_ms = 0;
    let daemon = start(&pool, s);
    wait_for(
        &pool,
        "SELECT least(count(*), 100) FROM pushrelay.deliveries WHERE state = 'delivered'",
        100,
    )
    .await;
    notify_range(&pool, 2000, 2001, "urgent").await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE priority = 'urgent' AND state = 'delivered'",
        1,
    )
    .await;
    // When the alert was sent, most of the backlog queued before it had
    // not even been fanned out, let alone sent.
    let (fanned_out_before, sent_before): (i64, i64) = sqlx::query_as(
        "WITH u AS (SELECT a.started_at, n.fanned_out_at
                      FROM pushrelay.notifications n
                      JOIN pushrelay.deliveries d ON d.notification_id = n.id
                      JOIN pushrelay.attempts a ON a.delivery_id = d.id
                     WHERE n.priority = 'urgent')
         SELECT (SELECT count(*) FROM pushrelay.notifications
                  WHERE priority = 'bulk' AND fanned_out_at <= (SELECT fanned_out_at FROM u)),
                (SELECT count(*) FROM pushrelay.attempts a
                   JOIN pushrelay.deliveries d ON d.id = a.delivery_id
                  WHERE d.priority = 'bulk' AND a.started_at <= (SELECT started_at FROM u))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        fanned_out_before < 1000,
        "{fanned_out_before} of 2000 bulk notifications were fanned out before the urgent one"
    );
    assert!(
        sent_before < 1000,
        "{sent_before} of 2000 bulk deliveries were sent before the urgent one"
    );
    // The backlog still drains completely.
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(count(&pool, DELIVERED).await, 2001);
    stop(daemon).await;
}

#[sqlx::test(migrations = false)]
async fn a_write_stall_longer_than_the_lease_sends_nothing_twice_and_loses_nothing(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (pool_a, pool_b) = (pool(&opts).await, pool(&opts).await);
    android_users(&pool_a, "device-", 200).await;
    let mut s = settings();
    s.worker.lease_secs = 2;
    s.lanes.android.concurrency = 20;
    s.simulator.latency_ms = 500;
    let providers = Providers::from_settings(&s).unwrap();
    let a = start_with(&pool_a, s.clone(), providers.clone());
    let b = start_with(&pool_b, s, providers.clone());
    notify_range(&pool_a, 0, 200, "urgent").await;
    wait_for(
        &pool_a,
        "SELECT least(count(*), 20) FROM pushrelay.deliveries WHERE state = 'sending'",
        20,
    )
    .await;

    // An operator's statement: reads go on, every write to deliveries
    // waits, for more than twice the lease.
    let mut lock = pool_a.begin().await.unwrap();
    sqlx::query("LOCK TABLE pushrelay.deliveries IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let delivered_at_lock = providers.simulator().unwrap().accepted();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let delivered_during = providers.simulator().unwrap().accepted() - delivered_at_lock;
    lock.commit().await.unwrap();

    wait_for(&pool_a, OPEN, 0).await;
    let simulator = providers.simulator().unwrap();
    assert_eq!(
        count(
            &pool_a,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered' AND tries = 1"
        )
        .await,
        200
    );
    assert_eq!(simulator.requests(), 200, "a delivery was sent twice");
    assert_eq!(
        count(
            &pool_a,
            "SELECT count(*) FROM pushrelay.attempts WHERE outcome = 'lost'"
        )
        .await,
        0
    );
    // Backpressure: with the results unwritable, the slots stayed taken and
    // no new sends started beyond the ones already in flight.
    assert!(
        delivered_during <= 40,
        "{delivered_during} sends finished while results could not be written"
    );
    stop(a).await;
    stop(b).await;
}

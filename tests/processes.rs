//! Several processes on one database: exactly-once without crashes, lease
//! rescue after a crash, graceful and hard shutdown, listener reconnects.

mod common;

use common::*;
use pushrelay::providers::Providers;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// One notification to each of the users `seed_users` made.
async fn enqueue_each(pool: &PgPool, users: u32) {
    notify_range(pool, 1, users + 1, "urgent").await;
}

#[sqlx::test(migrations = false)]
async fn two_daemons_send_every_delivery_exactly_once(_: PgPoolOptions, opts: PgConnectOptions) {
    let (pool_a, pool_b) = (pool(&opts).await, pool(&opts).await);
    seed_users(&pool_a, 300).await;
    let mut s = settings();
    // Small claims so both processes get a share.
    s.worker.dispatch_batch = 20;
    s.worker.fanout_batch = 10;
    s.lanes.ios.concurrency = 20;
    s.lanes.android.concurrency = 20;
    let providers = Providers::from_settings(&s).unwrap();
    let a = start_with(&pool_a, s.clone(), providers.clone());
    let b = start_with(&pool_b, s, providers.clone());
    enqueue_each(&pool_a, 300).await;

    wait_for(&pool_a, OPEN, 0).await;
    assert_eq!(
        count(
            &pool_a,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered' AND attempts = 1"
        )
        .await,
        600
    );
    assert_eq!(
        count(&pool_a, "SELECT count(*) FROM pushrelay.attempts").await,
        600
    );
    assert_eq!(
        providers.simulator().unwrap().requests(),
        600,
        "the provider saw a duplicate"
    );
    assert_eq!(
        count(
            &pool_a,
            "SELECT count(DISTINCT worker) FROM pushrelay.attempts"
        )
        .await,
        2,
        "both processes should have sent"
    );
    stop(a).await;
    stop(b).await;
}

#[sqlx::test(migrations = false)]
async fn deliveries_of_a_crashed_process_are_reclaimed_after_the_lease(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (pool_a, pool_b) = (pool(&opts).await, pool(&opts).await);
    seed_users(&pool_a, 20).await;
    // Process A claims everything and hangs in the provider; then it dies
    // without any cleanup (the task is dropped, like a killed process).
    let mut slow = settings();
    slow.simulator.latency_ms = 60_000;
    slow.worker.lease_secs = 1;
    slow.worker.send_timeout_ms = 120_000;
    slow.worker.id = "crashing-worker".into();
    let a = start(&pool_a, slow);
    enqueue_each(&pool_a, 20).await;
    wait_for(
        &pool_a,
        "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'sending'",
        40,
    )
    .await;
    a.handle.abort();
    let _ = a.handle.await;
    pool_a.close().await;

    let mut s = settings();
    s.worker.lease_secs = 4; // the rescuer looks every lease/4
    let b = start(&pool_b, s);
    wait_for(&pool_b, OPEN, 0).await;
    assert_eq!(count(&pool_b, DELIVERED).await, 40);
    assert_eq!(count(&pool_b, "SELECT count(*) FROM pushrelay.attempts WHERE outcome = 'lost' AND worker = 'crashing-worker'").await, 40);
    assert_eq!(b.providers.simulator().unwrap().accepted(), 40);
    stop(b).await;
}

/// A daemon with 100 deliveries in flight at a provider that answers after
/// `latency_ms`: the provider has received every one of them. (A delivery
/// is `sending` from the moment fan-out leases it, before a lane starts
/// it; a graceful stop hands unstarted ones back.)
async fn with_sends_in_flight(pool: &PgPool, latency_ms: u64) -> Running {
    seed_users(pool, 50).await;
    let mut s = settings();
    s.simulator.latency_ms = latency_ms;
    let daemon = start(pool, s);
    enqueue_each(pool, 50).await;
    let simulator = daemon.providers.simulator().unwrap().clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while simulator.requests() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 30 s for 100 sends to reach the provider; {} did",
            simulator.requests()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    daemon
}

#[sqlx::test(migrations = false)]
async fn graceful_shutdown_finishes_in_flight_sends(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let daemon = with_sends_in_flight(&pool, 500).await;
    let simulator = daemon.providers.simulator().unwrap().clone();
    stop(daemon).await;

    assert_eq!(count(&pool, "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'sending' OR lease_owner IS NOT NULL").await, 0);
    assert_eq!(count(&pool, DELIVERED).await, 100);
    assert_eq!(simulator.accepted(), 100);
}

#[sqlx::test(migrations = false)]
async fn hard_shutdown_hands_unfinished_sends_back(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let daemon = with_sends_in_flight(&pool, 30_000).await;
    daemon.stop.cancel();
    daemon.hard_stop.cancel();
    daemon.handle.await.unwrap().unwrap();

    // Nothing is left leased, and the abandoned attempts are not counted.
    assert_eq!(count(&pool, "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'pending' AND attempts = 0 AND lease_owner IS NULL").await, 100);
    // The next process sends them right away, without waiting for a lease.
    let next = start(&pool, settings());
    wait_for(&pool, OPEN, 0).await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered' AND attempts = 1"
        )
        .await,
        100
    );
    stop(next).await;
}

#[sqlx::test(migrations = false)]
async fn the_listener_reconnects_after_losing_its_connection(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    seed_users(&pool, 2).await;
    let mut s = settings();
    // No polling to speak of: only NOTIFY can wake the daemon in time.
    s.worker.poll_interval_ms = 600_000;
    let daemon = start(&pool, s);
    let listener_pid = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' ORDER BY backend_start DESC LIMIT 1";
    wait_for(
        &pool,
        &format!("SELECT count(*) FROM ({listener_pid}) l"),
        1,
    )
    .await;
    let old: i32 = sqlx::query_scalar(listener_pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    // What a database restart or a network cut does to the connection.
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(old)
        .execute(&pool)
        .await
        .unwrap();
    wait_for(
        &pool,
        &format!("SELECT count(*) FROM ({listener_pid}) l WHERE pid <> {old}"),
        1,
    )
    .await;

    enqueue_each(&pool, 2).await;
    wait_for(&pool, DELIVERED, 4).await;
    stop(daemon).await;
}

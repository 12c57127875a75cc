//! The console's verdict and timeline on what the worker really records:
//! notifications sent through the simulator (a dead token, a provider
//! unavailable four times before it accepts, a user without devices),
//! read back through the support view, then put in words. The words'
//! every case is unit-tested in `console::verdict` and
//! `console::timeline`; this checks they fit real rows.

mod common;

use chrono::Utc;
use chrono_tz::Tz;
use common::*;
use pushrelay::console::timeline::{attempts, timeline, Kind};
use pushrelay::console::verdict::{accepted_at, clock, verdict};
use pushrelay::model::{DeliveryState, Platform};
use pushrelay::store::status::{self, NotificationStatus};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

async fn notify(pool: &PgPool, user: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO pushrelay.notifications (app, user_id, body) VALUES ('bank', $1, 'hello')
         RETURNING id",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .expect("insert notification")
}

fn delivered_at(n: &NotificationStatus, platform: Platform) -> String {
    let d = n
        .deliveries
        .iter()
        .find(|d| d.platform == platform && d.state == DeliveryState::Delivered)
        .unwrap_or_else(|| panic!("a delivered {platform} delivery in {n:#?}"));
    clock(
        accepted_at(d).expect("an accepted attempt"),
        Tz::UTC,
        Utc::now(),
    )
}

#[sqlx::test(migrations = false)]
async fn the_words_fit_what_the_worker_recorded(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    add_device(&pool, "alice", Platform::Ios, &ios_token("a11ce", 1)).await;
    add_device(&pool, "alice", Platform::Android, "dead-android-token-0001").await;
    // The simulator answers 503 ServiceUnavailable four times, then accepts.
    add_device(&pool, "bob", Platform::Ios, &ios_token("fa11", 1)).await;
    let alice = notify(&pool, "alice").await;
    let bob = notify(&pool, "bob").await;
    let carol = notify(&pool, "carol").await;
    let daemon = start(&pool, settings());
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;

    let n = status::load(&pool, alice).await.unwrap();
    assert_eq!(
        verdict(&n, Tz::UTC, Utc::now()),
        format!(
            "Delivered to the iOS device at {}; the Android device's token was dead \
             (simulator Unregistered) and has been removed.",
            delivered_at(&n, Platform::Ios)
        )
    );
    let events = timeline(&n);
    let kinds: Vec<Kind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == Kind::Attempt).count(),
        2,
        "{events:#?}"
    );
    assert_eq!(
        (kinds[0], kinds[1]),
        (Kind::Created, Kind::FannedOut),
        "{events:#?}"
    );
    let invalidated = events
        .iter()
        .find(|e| e.kind == Kind::Invalidated)
        .expect("the dead token's device invalidated");
    assert!(invalidated
        .device
        .as_deref()
        .unwrap()
        .starts_with("Android …"));
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    // The whole token is never in the words.
    let words = serde_json::to_string(&events).unwrap();
    assert!(!words.contains("dead-android-token-0001"), "{words}");

    let n = status::load(&pool, bob).await.unwrap();
    assert_eq!(
        verdict(&n, Tz::UTC, Utc::now()),
        format!(
            "Delivered to the iOS device at {}.",
            delivered_at(&n, Platform::Ios)
        )
    );
    let rows = attempts(&n);
    assert_eq!(
        rows.iter()
            .map(|r| (r.number, r.outcome_words.as_str(), r.retry_at.is_some()))
            .collect::<Vec<_>>(),
        vec![
            (1, "Failed; retry scheduled", true),
            (2, "Failed; retry scheduled", true),
            (3, "Failed; retry scheduled", true),
            (4, "Failed; retry scheduled", true),
            (5, "Delivered", false),
        ]
    );
    assert_eq!(rows[0].answer, "HTTP 503 ServiceUnavailable");
    assert_eq!(rows[0].provider, "simulator");

    let n = status::load(&pool, carol).await.unwrap();
    assert_eq!(
        verdict(&n, Tz::UTC, Utc::now()),
        "Not sent: user carol has no active devices in app bank."
    );
}

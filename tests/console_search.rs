//! The console's search against a real database: a notification by id
//! and by idempotency key, a user by id, a device by the end of its
//! token; nothing of an app the viewer may not see; a token's end matched
//! literally (no wildcards), never by fewer than six characters.

mod common;

use common::*;
use pushrelay::model::{NotificationState, Platform};
use pushrelay::store::search::{search, Found, FoundUser, Single};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

const IOS: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7ec5d6";
const ANDROID: &str = "fcm:APA91bH-alice-registration_token-9z8y7x";

async fn device(pool: &PgPool, app: &str, user: &str, platform: Platform, token: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO pushrelay.devices (app, user_id, platform, token)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(app)
    .bind(user)
    .bind(platform.as_str())
    .bind(token)
    .fetch_one(pool)
    .await
    .expect("insert device")
}

async fn notification(pool: &PgPool, app: &str, user: &str, key: Option<&str>) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO pushrelay.notifications (app, user_id, body, idempotency_key)
         VALUES ($1, $2, 'hello', $3) RETURNING id",
    )
    .bind(app)
    .bind(user)
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("insert notification")
}

fn apps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn find(pool: &PgPool, q: &str, visible: &[&str]) -> Found {
    search(pool, q, &apps(visible)).await.expect("search")
}

#[sqlx::test(migrations = false)]
async fn each_kind_is_found(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let ios = device(&pool, APP, "alice", Platform::Ios, IOS).await;
    let android = device(&pool, APP, "alice", Platform::Android, ANDROID).await;
    sqlx::query("UPDATE pushrelay.devices SET invalidated_at = now() WHERE id = $1")
        .bind(android)
        .execute(&pool)
        .await
        .unwrap();
    let id = notification(&pool, APP, "alice", Some("order-17")).await;
    notification(&pool, APP, "alice", None).await;

    let found = find(&pool, &id.to_string(), &[APP]).await;
    assert_eq!(found.notifications.len(), 1, "{found:?}");
    let n = &found.notifications[0];
    assert_eq!(
        (n.id, n.app.as_str(), n.user_id.as_deref(), n.state),
        (id, APP, Some("alice"), NotificationState::Pending)
    );
    assert_eq!(n.idempotency_key.as_deref(), Some("order-17"));
    assert_eq!(found.single(), Some(Single::Notification(id)));

    let found = find(&pool, " order-17\n", &[APP]).await;
    assert_eq!(
        found.notifications.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![id]
    );
    assert!(found.users.is_empty() && found.devices.is_empty());

    let found = find(&pool, "alice", &[APP]).await;
    assert_eq!(
        found.users,
        vec![FoundUser {
            user_id: "alice".into(),
            app: APP.into(),
            devices: 2,
            notifications: 2,
        }]
    );
    assert!(found.notifications.is_empty() && found.devices.is_empty());
    assert_eq!(found.single(), Some(Single::User("alice".into())));
    // A user id is matched exactly, not by a part of it.
    assert!(find(&pool, "alic", &[APP]).await.is_empty());

    let found = find(&pool, "ec5d6", &[APP]).await;
    assert!(found.devices.is_empty(), "five characters: {found:?}");
    let found = find(&pool, "7ec5d6", &[APP]).await;
    assert_eq!(found.devices.len(), 1, "{found:?}");
    let d = &found.devices[0];
    assert_eq!(
        (d.id, d.app.as_str(), d.user_id.as_str(), d.platform),
        (ios, APP, "alice", Platform::Ios)
    );
    assert_eq!(d.token, pushrelay::model::mask_token(IOS));
    assert!(!d.invalidated);
    assert_eq!(found.single(), Some(Single::User("alice".into())));

    // An invalidated device is found too, and says so; its whole token
    // is a token end like any other, but never shown whole.
    let found = find(&pool, ANDROID, &[APP]).await;
    assert_eq!(found.devices.len(), 1, "{found:?}");
    assert_eq!(found.devices[0].id, android);
    assert!(found.devices[0].invalidated);
    assert!(!found.devices[0].token.contains("registration"));
}

#[sqlx::test(migrations = false)]
async fn another_apps_rows_are_not_found(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    device(&pool, "shop", "carol", Platform::Android, ANDROID).await;
    let id = notification(&pool, "shop", "carol", Some("cart-9")).await;
    // The same user id in the visible app is found there only.
    device(&pool, APP, "carol", Platform::Ios, IOS).await;

    for q in [id.to_string().as_str(), "cart-9", "ion_token-9z8y7x"] {
        let found = find(&pool, q, &[APP]).await;
        assert!(found.is_empty(), "{q}: {found:?}");
        let found = find(&pool, q, &[APP, "shop"]).await;
        assert!(!found.is_empty(), "{q} is in shop");
        assert!(
            found
                .notifications
                .iter()
                .map(|n| &n.app)
                .chain(found.devices.iter().map(|d| &d.app))
                .all(|app| app == "shop"),
            "{found:?}"
        );
    }
    let found = find(&pool, "carol", &[APP]).await;
    assert_eq!(
        found
            .users
            .iter()
            .map(|u| (u.app.as_str(), u.devices, u.notifications))
            .collect::<Vec<_>>(),
        vec![(APP, 1, 0)]
    );
    let found = find(&pool, "carol", &["shop", APP]).await;
    assert_eq!(
        found
            .users
            .iter()
            .map(|u| (u.app.as_str(), u.devices, u.notifications))
            .collect::<Vec<_>>(),
        vec![(APP, 1, 0), ("shop", 1, 1)]
    );
    // One user id in two apps is two matches: no single page to go to.
    assert_eq!(found.single(), None);
    // No visible app, nothing found.
    assert!(find(&pool, "carol", &[]).await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn a_token_end_matches_literally(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let literal = device(&pool, APP, "dave", Platform::Android, "fcm:xyz-a_b%c9").await;
    // Would match `a_b%c9` if `_` and `%` were wildcards.
    device(&pool, APP, "erin", Platform::Android, "fcm:xyz-aXbYYc9").await;
    device(
        &pool,
        APP,
        "erin",
        Platform::Android,
        "fcm:xyz-a_b%c9-not-the-end",
    )
    .await;

    let found = find(&pool, "a_b%c9", &[APP]).await;
    assert_eq!(
        found.devices.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![literal],
        "{found:?}"
    );
    assert!(find(&pool, "_b%c99", &[APP]).await.devices.is_empty());
    // `~` is the highest token character: a token ending with it is found.
    let tilde = device(&pool, APP, "frank", Platform::Android, "fcm:xyz-end~~~~~~").await;
    let found = find(&pool, "~~~~~~", &[APP]).await;
    assert_eq!(
        found.devices.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![tilde]
    );
}

#[sqlx::test(migrations = false)]
async fn a_short_or_impossible_token_end_scans_no_tokens(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    // Tokens ending with every string searched below.
    device(&pool, APP, "gina", Platform::Android, "fcm:token-c5d6e").await;
    device(&pool, APP, "hal", Platform::Android, "fcm:token-1c5d6e").await;
    assert!(find(&pool, "c5d6e", &[APP]).await.is_empty());
    assert_eq!(find(&pool, "1c5d6e", &[APP]).await.devices.len(), 1);
    // A space is no token character: not a token end, whatever its length.
    device(
        &pool,
        APP,
        "ivy",
        Platform::Android,
        "fcm:has-a-space-at-its-end",
    )
    .await;
    assert!(find(&pool, "its end", &[APP]).await.devices.is_empty());
}

#[sqlx::test(migrations = false)]
async fn an_unknown_id_or_an_empty_box_finds_nothing(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    device(&pool, APP, "jo", Platform::Ios, IOS).await;
    notification(&pool, APP, "jo", Some("k-1")).await;
    let found = find(&pool, &Uuid::new_v4().to_string(), &[APP]).await;
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(found.single(), None);
    assert!(find(&pool, "   ", &[APP]).await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn an_id_used_as_its_own_key_is_found_once(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let id = notification(&pool, APP, "kim", None).await;
    sqlx::query("UPDATE pushrelay.notifications SET idempotency_key = id::text WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    // Another notification keyed by the first one's id (producers reuse
    // ids as keys) is found beside it.
    let other = notification(&pool, "shop", "kim", Some(&id.to_string())).await;
    let found = find(&pool, &id.to_string(), &[APP, "shop"]).await;
    assert_eq!(
        found.notifications.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![id, other]
    );
}

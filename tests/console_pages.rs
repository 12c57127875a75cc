//! The support console's pages over real HTTP against a real database:
//! a user's notifications paged newest first, and keys limited to an app
//! seeing nothing of another app's users and notifications.

mod common;

use common::api::{key, spawn};
use common::console::{client, get, sign_in};
use common::*;
use pushrelay::model::Platform;
use reqwest::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

/// Notifications to `user`, one statement each so they are created in
/// order, titled `n01`, `n02`, …
async fn notify(pool: &PgPool, app: &str, user: &str, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 1..=n {
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO pushrelay.notifications (app, user_id, title, body, send_at)
             VALUES ($1, $2, $3, 'hello', now() + interval '1 day') RETURNING id",
        )
        .bind(app)
        .bind(user)
        .bind(format!("n{i:02}"))
        .fetch_one(pool)
        .await
        .unwrap();
        ids.push(id);
    }
    ids
}

/// The titles of the notifications table's rows, in page order.
fn titles(page: &str) -> Vec<String> {
    let table = &page[page
        .find("id=\"notifications\"")
        .expect("notifications table")..];
    let table = &table[..table.find("</table>").unwrap()];
    table
        .split("\">n")
        .skip(1)
        .map(|s| format!("n{}", &s[..2]))
        .collect()
}

#[sqlx::test(migrations = false)]
async fn a_users_notifications_are_paged_newest_first(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    add_device(&pool, "pat", Platform::Ios, &ios_token("a1", 1)).await;
    // A second device, sent to through Amazon SNS: its endpoint is shown.
    let arn = "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/bank/5e7f";
    let android = add_device(&pool, "pat", Platform::Android, "fcm-token-of-pat-2").await;
    sqlx::query("UPDATE pushrelay.devices SET sns_endpoint_arn = $2 WHERE id = $1")
        .bind(android)
        .bind(arn)
        .execute(&pool)
        .await
        .unwrap();
    notify(&pool, APP, "pat", 30).await;
    let cookie = sign_in(&api, &key(&pool, &["read"], None).await).await;

    let first = get(&api, "/console/users/pat", Some(&cookie)).await;
    let status = first.status;
    let first = first.body;
    assert_eq!(status, StatusCode::OK);
    let want: Vec<String> = (6..=30).rev().map(|i| format!("n{i:02}")).collect();
    assert_eq!(titles(&first), want);
    assert!(first.contains("iOS"), "the device is listed");
    // HTML-escaped, as every value the console shows.
    let shown = arn.replace('/', "&#x2f;");
    assert!(
        first.contains(&format!("SNS endpoint <code>{shown}</code>")),
        "{first}"
    );

    let href = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .expect("a link to older notifications")
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let second = get(&api, &href, Some(&cookie)).await;
    let status = second.status;
    let second = second.body;
    assert_eq!(status, StatusCode::OK);
    let want: Vec<String> = (1..=5).rev().map(|i| format!("n{i:02}")).collect();
    assert_eq!(titles(&second), want);
    assert!(
        !second.contains("rel=\"next\""),
        "the last page links no further"
    );

    let page = get(
        &api,
        "/console/users/pat?cursor=not-a-cursor",
        Some(&cookie),
    )
    .await;
    let status = page.status;
    let page = page.body;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("link is damaged"), "{page}");
}

#[sqlx::test(migrations = false)]
async fn a_key_for_another_app_sees_nothing_of_this_one(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, two_apps()).await;
    add_device(&pool, "pat", Platform::Ios, &ios_token("a1", 1)).await;
    let id = notify(&pool, APP, "pat", 1).await[0];

    let shop = sign_in(&api, &key(&pool, &["read"], Some(&[SHOP])).await).await;
    let page = get(&api, "/console/users/pat", Some(&shop)).await;
    let status = page.status;
    let page = page.body;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("No user") && !page.contains("n01"), "{page}");
    let page = get(&api, &format!("/console/notifications/{id}"), Some(&shop)).await;
    let status = page.status;
    let page = page.body;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        page.contains("No notification") && !page.contains("n01"),
        "{page}"
    );

    let bank = sign_in(&api, &key(&pool, &["read"], Some(&[APP])).await).await;
    let page = get(&api, &format!("/console/notifications/{id}"), Some(&bank)).await;
    let status = page.status;
    let page = page.body;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("n01"), "{page}");
}

#[sqlx::test(migrations = false)]
async fn a_key_without_the_read_scope_cannot_sign_in(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let send_only = key(&pool, &["send"], None).await;
    let res = client()
        .post(api.url("/console/sign-in"))
        .form(&[("key", send_only.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get("set-cookie").is_none(), "no session");
    let page = res.text().await.unwrap();
    assert!(page.contains("lacks the read scope"), "{page}");
    assert!(!page.contains(&send_only), "the key is never echoed");
}

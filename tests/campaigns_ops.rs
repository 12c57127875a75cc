//! Campaigns for the operator: what they keep about users goes with
//! erasure and retention (a user's place in audiences and on uploaded
//! lists, the targets of campaigns that ended long ago), and `/metrics`
//! counts the campaigns under way.
mod common;

use chrono::Utc;
use pushrelay::store::campaigns::{self, Content, NewCampaign, Segment};
use pushrelay::store::{history, users};
use pushrelay::worker::campaigns::{context, limits};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn campaign_to_all(pool: &sqlx::PgPool, list: Option<uuid::Uuid>) -> uuid::Uuid {
    let id = create(pool, list, None).await;
    // Starting it fixes the audience as targets.
    let settings = common::settings();
    campaigns::pump(pool, &context(&settings), limits(&settings), Utc::now())
        .await
        .unwrap();
    id
}

async fn create(
    pool: &sqlx::PgPool,
    list: Option<uuid::Uuid>,
    throttle: Option<i64>,
) -> uuid::Uuid {
    let settings = common::settings();
    let (c, _) = campaigns::create(
        pool,
        &context(&settings),
        &settings.apps.keys().cloned().collect::<Vec<_>>(),
        &NewCampaign {
            app: common::APP.into(),
            name: "winter offer".into(),
            content: Content {
                body: Some("20 % off".into()),
                ..Content::default()
            },
            segment: Segment {
                all: list.is_none(),
                ..Segment::default()
            },
            user_list_id: list,
            throttle_per_minute: throttle,
            ..NewCampaign::default()
        },
        Utc::now(),
    )
    .await
    .unwrap();
    c.id
}

#[sqlx::test(migrations = false)]
async fn erasure_takes_the_user_out_of_audiences_and_lists(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 3).await;
    let csv = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        b"user_id\nu1\nu2\n",
    ))]);
    let list = campaigns::upload_user_list(&pool, common::APP, "vip", csv)
        .await
        .unwrap();
    assert_eq!(list.users, 2);
    let id = campaign_to_all(&pool, Some(list.id)).await;
    let targets = |user: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pushrelay.campaign_targets WHERE campaign_id = $1 AND user_id = $2",
            )
            .bind(id)
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(targets("u1").await, 2, "an iOS and an Android device");

    users::erase(&pool, "u1", None).await.unwrap();
    assert_eq!(targets("u1").await, 0);
    assert_eq!(targets("u2").await, 2, "other users stay");
    let on_list = common::count(
        &pool,
        "SELECT count(*) FROM pushrelay.user_list_members WHERE user_id = 'u1'",
    )
    .await;
    assert_eq!(on_list, 0);
    assert_eq!(
        common::count(&pool, "SELECT count(*) FROM pushrelay.user_list_members").await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn retention_deletes_the_targets_of_campaigns_that_ended_long_ago(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 5).await;
    let old = campaign_to_all(&pool, None).await;
    let recent = campaign_to_all(&pool, None).await;
    let running = campaign_to_all(&pool, None).await;
    for id in [old, recent] {
        campaigns::cancel(&pool, id, None).await.unwrap();
    }
    sqlx::query(
        "UPDATE pushrelay.campaigns SET cancelled_at = now() - interval '40 days' WHERE id = $1",
    )
    .bind(old)
    .execute(&pool)
    .await
    .unwrap();

    assert_eq!(
        history::clean_campaign_targets(&pool, 30, 1000)
            .await
            .unwrap(),
        10
    );
    let left = |id: uuid::Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pushrelay.campaign_targets WHERE campaign_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(left(old).await, 0);
    assert_eq!(left(recent).await, 10);
    assert_eq!(left(running).await, 10);
    // The campaign itself is kept.
    assert!(campaigns::get(&pool, old, None).await.unwrap().is_some());
}

#[sqlx::test(migrations = false)]
async fn metrics_count_the_campaigns_under_way(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 2).await;
    // One a minute: the first step sends one device and the campaign runs on.
    create(&pool, None, Some(1)).await;
    let settings = common::settings();
    campaigns::pump(&pool, &context(&settings), limits(&settings), Utc::now())
        .await
        .unwrap();
    let paused = create(&pool, None, None).await;
    let cancelled = create(&pool, None, None).await;
    campaigns::pause(&pool, paused, None).await.unwrap();
    campaigns::cancel(&pool, cancelled, None).await.unwrap();

    let body = pushrelay::telemetry::scrape(&pool).await;
    let gauge = |state: &str| {
        common::api::samples(
            &body,
            "pushrelay_campaigns",
            &[&format!("state=\"{state}\"")],
        )
    };
    assert_eq!(gauge("running"), vec![1.0], "{body}");
    assert_eq!(gauge("paused"), vec![1.0]);
    assert_eq!(gauge("scheduled"), vec![0.0]);
}

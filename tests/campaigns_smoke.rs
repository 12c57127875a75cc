//! Smoke test of the campaign pipeline end to end (store → pump → worker).
mod common;

use chrono::Utc;
use pushrelay::store::campaigns::{self, Content, NewCampaign, Segment};
use pushrelay::worker::campaigns::{context, limits};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrations = false)]
async fn a_campaign_reaches_every_device(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 500).await;
    let settings = common::settings();
    let ctx = context(&settings);
    let apps: Vec<String> = settings.apps.keys().cloned().collect();
    let now = Utc::now();
    let (c, reach) = campaigns::create(
        &pool,
        &ctx,
        &apps,
        &NewCampaign {
            app: common::APP.into(),
            name: "hello".into(),
            content: Content {
                body: Some("hi".into()),
                ..Content::default()
            },
            segment: Segment {
                all: true,
                ..Segment::default()
            },
            ..NewCampaign::default()
        },
        now,
    )
    .await
    .unwrap();
    assert_eq!(reach.devices, 1000);
    assert_eq!(reach.users, 500);
    let p = campaigns::pump(&pool, &ctx, limits(&settings), now)
        .await
        .unwrap();
    assert_eq!(p.started, 1);
    assert_eq!(p.queued, 1000, "{p:?}");
    assert_eq!(p.notifications, 500);
    let running = common::start(&pool, settings.clone());
    common::wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered'",
        1000,
    )
    .await;
    common::stop(running).await;
    // The daemon's own pump saw the campaign through.
    let c = campaigns::get(&pool, c.id, None).await.unwrap().unwrap();
    assert_eq!(c.state, campaigns::CampaignState::Completed);
    let progress = campaigns::progress(&pool, c.id, Utc::now()).await.unwrap();
    assert_eq!(progress.total.delivered, 1000, "{progress:?}");
    assert!(progress.finished);
}

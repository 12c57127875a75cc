//! The console overview's data, end to end: the real daemon sends to the
//! simulator (deliveries, dead tokens, transient failures then success)
//! for two apps, and the overview's outcome counts — kept per minute by
//! the completer — must equal what the attempts table says; the queue,
//! the outbox, paused providers and campaigns are read from rows the test
//! sets up. Also the rescuer's `lost` tries, and the cleaner's retention
//! of the counts and of console sessions; and the page itself over HTTP.

mod common;

use std::sync::Arc;

use chrono::{Duration, Utc};
use common::api::{key, spawn, TestApi};
use common::console::{client, get, sign_in};
use common::*;
use pushrelay::config::{ProviderSettings, Settings};
use pushrelay::model::{AttemptOutcome, DeliveryState, Environment, Platform};
use pushrelay::store::campaigns::{
    self, Campaign, CampaignState, Content, NewCampaign, Schedule, Segment,
};
use pushrelay::store::deliveries::{self, Completion, Receipt, Undo};
use pushrelay::store::devices::{self, NewDevice};
use pushrelay::store::holds::{self, Hold};
use pushrelay::store::overview::{self, Failure, OutcomeCount, Overview};
use pushrelay::store::workers;
use pushrelay::worker::campaigns::context;
use pushrelay::worker::maintenance::cleaner;
use reqwest::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// [`two_apps`], the shop on Android too, and a breaker that stays shut.
fn shop_on_both_platforms() -> Settings {
    let mut s = two_apps();
    s.apps.get_mut(SHOP).unwrap().android = Some(ProviderSettings::Simulator);
    // Eight transient failures in a row are the point here, not a reason
    // to hold the app.
    s.worker.breaker_threshold = 1000;
    s
}

async fn device(pool: &PgPool, app: &str, user: &str, platform: Platform, token: &str) -> i64 {
    devices::register(
        pool,
        &NewDevice {
            app,
            user_id: user,
            platform,
            token,
            environment: Environment::Production,
            locale: "en",
            timezone: "UTC",
        },
    )
    .await
    .expect("register device")
}

/// A campaign to every device of the shop, by `schedule` (default: now).
async fn shop_campaign(pool: &PgPool, s: &Settings, name: &str, schedule: Schedule) -> Campaign {
    campaigns::create(
        pool,
        &context(s),
        &[APP.into(), SHOP.into()],
        &NewCampaign {
            app: SHOP.into(),
            name: name.into(),
            content: Content {
                title: Some("Sale".into()),
                body: Some("20% off".into()),
                ..Content::default()
            },
            segment: Segment {
                all: true,
                ..Segment::default()
            },
            schedule,
            ..NewCampaign::default()
        },
        Utc::now(),
    )
    .await
    .expect("create campaign")
    .0
}

async fn notify(pool: &PgPool, app: &str, user: &str) {
    sqlx::query("INSERT INTO pushrelay.notifications (app, user_id, body) VALUES ($1, $2, 'hi')")
        .bind(app)
        .bind(user)
        .execute(pool)
        .await
        .expect("notify");
}

/// What the attempts table says, per app, platform and outcome.
async fn attempts_by_outcome(pool: &PgPool) -> Vec<OutcomeCount> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT d.app, d.platform, a.outcome, count(*)
           FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id
          GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(app, platform, outcome, count)| OutcomeCount {
            app,
            platform,
            outcome,
            count,
        })
        .collect()
}

/// What the attempts table says of failures (the simulator's reasons are
/// documented ones, so each is its own label), most frequent first.
async fn failures_by_reason(pool: &PgPool) -> Vec<Failure> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT d.app, d.platform, a.outcome, a.reason, count(*)
           FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id
          WHERE a.outcome <> 'delivered'
          GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 1, 2, 3, 4",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(app, platform, outcome, reason, count)| Failure {
            app,
            platform,
            outcome,
            reason,
            count,
        })
        .collect()
}

fn apps_in(o: &Overview) -> Vec<&str> {
    let mut apps: Vec<&str> = o
        .outcomes
        .iter()
        .map(|c| c.app.as_str())
        .chain(o.queues.iter().map(|q| q.app.as_str()))
        .chain(o.failures.iter().map(|f| f.app.as_str()))
        .chain(o.holds.iter().map(|h| h.app.as_str()))
        .chain(o.campaigns.iter().map(|c| c.campaign.app.as_str()))
        .chain(o.outbox.iter().map(|b| b.app.as_str()))
        .collect();
    apps.sort_unstable();
    apps.dedup();
    apps
}

#[sqlx::test(migrations = false)]
async fn the_overview_counts_what_the_attempts_say_per_app_and_keeps_apps_apart(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let s = shop_on_both_platforms();
    // bank: 4 iPhones delivered, 2 dead, 2 failing 4 times then
    // delivered; 2 Android phones delivered, 1 dead. shop: 3 iPhones
    // delivered, 1 dead.
    for i in 0..4 {
        device(
            &pool,
            APP,
            &format!("b{i}"),
            Platform::Ios,
            &ios_token("00", i),
        )
        .await;
    }
    for i in 0..2 {
        device(
            &pool,
            APP,
            &format!("b{}", 4 + i),
            Platform::Ios,
            &ios_token("dead", i),
        )
        .await;
        device(
            &pool,
            APP,
            &format!("b{}", 6 + i),
            Platform::Ios,
            &ios_token("fa11", i),
        )
        .await;
    }
    for i in 0..2 {
        let token = format!("android-token-bank-{i}");
        device(
            &pool,
            APP,
            &format!("b{}", 8 + i),
            Platform::Android,
            &token,
        )
        .await;
    }
    device(
        &pool,
        APP,
        "b10",
        Platform::Android,
        "dead-android-token-bank",
    )
    .await;
    for i in 0..3 {
        device(
            &pool,
            SHOP,
            &format!("s{i}"),
            Platform::Ios,
            &ios_token("01", i),
        )
        .await;
    }
    device(&pool, SHOP, "s3", Platform::Ios, &ios_token("dead", 9)).await;

    let daemon = start(&pool, s.clone());
    for i in 0..11 {
        notify(&pool, APP, &format!("b{i}")).await;
    }
    for i in 0..4 {
        notify(&pool, SHOP, &format!("s{i}")).await;
    }
    wait_for(&pool, OPEN, 0).await;

    // A campaign to every shop device still alive (the dead one was
    // invalidated above), sent by the daemon.
    let campaign = shop_campaign(&pool, &s, "winter sale", Schedule::default()).await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.campaigns WHERE state = 'completed'",
        1,
    )
    .await;
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;

    let o = overview::load(&pool).await.expect("load the overview");

    // Outcomes: exactly the attempts table, per app, platform and outcome.
    let want = attempts_by_outcome(&pool).await;
    assert_eq!(o.outcomes, want);
    let bank_ios = |outcome: &str| {
        o.outcomes
            .iter()
            .find(|c| c.app == APP && c.platform == "ios" && c.outcome == outcome)
            .map_or(0, |c| c.count)
    };
    assert_eq!(bank_ios("delivered"), 6, "{:?}", o.outcomes);
    assert_eq!(bank_ios("token_dead"), 2);
    assert_eq!(bank_ios("transient"), 8);
    let row = o
        .outcome_rows
        .iter()
        .find(|r| r.app == APP && r.platform == "ios")
        .expect("a bank iOS row");
    assert_eq!(
        (row.total, row.delivered, row.transient, row.token_dead),
        (16, 6, 8, 2)
    );
    let shop_delivered: i64 = o
        .outcomes
        .iter()
        .filter(|c| c.app == SHOP && c.outcome == "delivered")
        .map(|c| c.count)
        .sum();
    assert_eq!(shop_delivered, 6, "3 notifications and 3 campaign sends");

    // Top reasons: the attempts' failures, most frequent first.
    let reasons = failures_by_reason(&pool).await;
    assert_eq!(o.failures, reasons);
    assert_eq!(
        (
            o.failures[0].app.as_str(),
            o.failures[0].platform.as_str(),
            o.failures[0].outcome.as_str(),
            o.failures[0].reason.as_str(),
            o.failures[0].count
        ),
        (APP, "ios", "transient", "ServiceUnavailable", 8)
    );

    // The campaign, with its progress.
    let c = o
        .campaigns
        .iter()
        .find(|c| c.campaign.id == campaign.id)
        .expect("the campaign is listed");
    assert_eq!(c.campaign.state, CampaignState::Completed);
    assert_eq!(c.progress.total.targeted, 3);
    assert_eq!(c.progress.total.delivered, 3);
    assert_eq!((c.done, c.percent_done), (3, 100.0));

    // Nothing pending: no queue rows.
    assert!(o.queues.iter().all(|q| q.due == 0), "{:?}", o.queues);

    // Another viewer: only shop.
    let shop = o.only(Some(&[SHOP.to_string()]));
    assert_eq!(apps_in(&shop), [SHOP]);
    assert_eq!(
        shop.outcomes,
        want.iter()
            .filter(|c| c.app == SHOP)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        shop.failures,
        reasons
            .iter()
            .filter(|f| f.app == SHOP)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(shop.campaigns.len(), 1);
    let bank = o.only(Some(&[APP.to_string()]));
    assert_eq!(apps_in(&bank), [APP]);
    assert!(bank.campaigns.is_empty());
    assert_eq!(apps_in(&o.only(None)), [APP, SHOP]);
}

/// A bank user's overdue iPhone delivery (3 min), one due in 10 min, an
/// Android one being sent; two notifications due but not fanned out and
/// one for tomorrow; the bank's iOS provider paused. No daemon runs, so
/// it all stays as it is.
async fn backlog(pool: &PgPool) {
    let pool = pool.clone();
    let phone = device(&pool, APP, "u1", Platform::Ios, &ios_token("00", 1)).await;
    let tablet = device(&pool, APP, "u1", Platform::Ios, &ios_token("00", 2)).await;
    let android = device(&pool, APP, "u1", Platform::Android, "android-token-u1").await;
    // No daemon runs: what is pending stays pending.
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO pushrelay.notifications (app, user_id, body, state)
         VALUES ('bank', 'u1', 'hi', 'dispatched') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let now = Utc::now();
    for (device, platform, state, at) in [
        (phone, "ios", "pending", now - Duration::minutes(3)),
        (tablet, "ios", "pending", now + Duration::minutes(10)),
        (android, "android", "sending", now - Duration::seconds(5)),
    ] {
        sqlx::query(
            "INSERT INTO pushrelay.deliveries
                 (notification_id, device_id, app, platform, priority, expires_at, state,
                  next_attempt_at, lease_owner)
             VALUES ($1, $2, 'bank', $3, 'urgent', now() + interval '1 day', $4, $5,
                     CASE WHEN $4 = 'sending' THEN 'gone' END)",
        )
        .bind(id)
        .bind(device)
        .bind(platform)
        .bind(state)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    }
    // Two notifications due but not fanned out, one for tomorrow.
    sqlx::query(
        "INSERT INTO pushrelay.notifications (app, user_id, body, send_at)
         VALUES ('bank', 'u1', 'a', now() - interval '2 minutes'),
                ('bank', 'u1', 'b', now()),
                ('bank', 'u1', 'c', now() + interval '1 day')",
    )
    .execute(&pool)
    .await
    .unwrap();
    holds::record(
        &pool,
        &Hold {
            app: APP.into(),
            platform: Platform::Ios,
            environment: Environment::Production,
            worker: "w1".into(),
            kind: "config_error".into(),
            reason: "InvalidProviderToken".into(),
            hint: "check the APNs key id and team id".into(),
            paused_at: now,
            paused_until: now + Duration::minutes(5),
        },
    )
    .await
    .unwrap();
}

#[sqlx::test(migrations = false)]
async fn the_overview_shows_overdue_deliveries_the_outbox_and_paused_providers(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    backlog(&pool).await;
    let o = overview::load(&pool).await.expect("load the overview");

    let ios = o
        .queues
        .iter()
        .find(|q| q.app == APP && q.platform == "ios")
        .expect("a bank iOS queue");
    assert_eq!((ios.due, ios.later, ios.sending), (1, 1, 0));
    let age = ios
        .oldest_due_age_secs
        .expect("an overdue delivery has an age");
    assert!(
        age >= 179.0,
        "the oldest due delivery is 3 min overdue, not {age} s"
    );
    let android = o
        .queues
        .iter()
        .find(|q| q.app == APP && q.platform == "android")
        .expect("a bank Android queue");
    assert_eq!((android.due, android.later, android.sending), (0, 0, 1));
    assert_eq!(android.oldest_due_age_secs, None);

    assert_eq!(o.outbox.len(), 1);
    assert_eq!((o.outbox[0].due, o.outbox[0].later), (2, 1));
    assert!(o.outbox[0].oldest_due_age_secs.unwrap() >= 119.0);

    assert_eq!(o.holds.len(), 1);
    let h = &o.holds[0];
    assert_eq!((h.app.as_str(), h.platform), (APP, Platform::Ios));
    assert_eq!(h.reason, "InvalidProviderToken");
    assert_eq!(h.hint, "check the APNs key id and team id");

    // A viewer of another app sees none of it.
    let other = o.only(Some(&[SHOP.to_string()]));
    assert!(other.queues.is_empty() && other.outbox.is_empty() && other.holds.is_empty());
}

#[sqlx::test(migrations = false)]
async fn a_rescued_try_is_counted_once_as_lost(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let phone = device(&pool, APP, "u1", Platform::Ios, &ios_token("00", 1)).await;
    let tablet = device(&pool, APP, "u1", Platform::Ios, &ios_token("00", 2)).await;
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO pushrelay.notifications (app, user_id, body, state)
         VALUES ('bank', 'u1', 'hi', 'dispatched') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // Two deliveries in flight at their first try, leased to a process
    // that never registered (so it counts as gone).
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO pushrelay.deliveries
             (notification_id, device_id, app, platform, priority, expires_at, state,
              attempts, tries, lease_owner)
         SELECT $1, d, 'bank', 'ios', 'urgent', now() + interval '1 day', 'sending', 1, 1, 'w-gone'
           FROM unnest($2::bigint[]) d
         ORDER BY d
         RETURNING id",
    )
    .bind(id)
    .bind([phone, tablet])
    .fetch_all(&pool)
    .await
    .unwrap();
    let r = workers::rescue(&pool, std::time::Duration::from_secs(60), 1000, &[])
        .await
        .unwrap();
    assert_eq!(r.rescued, 2);

    // The gone process was only cut off: its results arrive after the
    // rescue. One try was the rescued one (its `lost` receipt stands); the
    // other delivery's second try is new and counts.
    let finished = Utc::now();
    let done = |delivery_id: i64, attempt: i32| Completion {
        delivery_id,
        state: DeliveryState::Delivered,
        next_attempt_at: None,
        undo: Undo::Nothing,
        provider_message_id: None,
        last_error: None,
        receipt: Some(Receipt {
            attempt,
            provider: "simulator",
            started_at: finished,
            finished_at: finished,
            outcome: AttemptOutcome::Delivered,
            status_code: Some(200),
            reason: None,
            app: Arc::from(APP),
            platform: Platform::Ios,
            label: "none",
        }),
        invalidate: None,
        endpoint: None,
    };
    let late = [done(ids[0], 1), done(ids[1], 2)];
    deliveries::write_results(&pool, "w-gone", &late.iter().collect::<Vec<_>>())
        .await
        .unwrap();

    let o = overview::load(&pool).await.unwrap();
    assert_eq!(o.outcomes, attempts_by_outcome(&pool).await);
    let n = |outcome: &str| {
        o.outcomes
            .iter()
            .find(|c| c.outcome == outcome)
            .map_or(0, |c| c.count)
    };
    assert_eq!((n("lost"), n("delivered")), (2, 1), "{:?}", o.outcomes);
    assert_eq!(
        (
            o.failures[0].outcome.as_str(),
            o.failures[0].reason.as_str()
        ),
        ("lost", "lost")
    );
}

#[sqlx::test(migrations = false)]
async fn the_cleaner_drops_week_old_counts_and_expired_sessions(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    // 2,500 minutes of counts older than a week (more than one batch),
    // and the last hour's.
    sqlx::query(
        "INSERT INTO pushrelay.attempt_counts (minute, app, platform, outcome, reason, count)
         SELECT date_trunc('minute', now()) - make_interval(mins => m), 'bank', 'ios',
                'delivered', 'none', 1
           FROM generate_series(0, 59) m
         UNION ALL
         SELECT date_trunc('minute', now()) - interval '8 days' - make_interval(mins => m),
                'bank', 'ios', 'delivered', 'none', 1
           FROM generate_series(0, 2499) m",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO pushrelay.console_sessions (secret_sha256, key_id, expires_at)
         VALUES ('\\x01', 1, now() - interval '1 minute'), ('\\x02', 1, now() + interval '1 hour')",
    )
    .execute(&pool)
    .await
    .unwrap();

    cleaner::pass(&pool, 30, &CancellationToken::new()).await;

    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.attempt_counts").await,
        60
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.attempt_counts WHERE minute < now() - interval '1 hour'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.console_sessions WHERE secret_sha256 = '\\x02'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM pushrelay.console_sessions").await,
        1
    );
}

async fn overview_page(api: &TestApi, cookie: &str) -> String {
    let res = get(api, "/console/overview", Some(cookie)).await;
    assert_eq!(res.status, StatusCode::OK);
    res.body
}

/// The text of the table with `id`, tags removed and spaces collapsed.
fn table_text(page: &str, id: &str) -> String {
    let from = page
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id}: {page}"));
    let html = &page[from..];
    let html = &html[..html.find("</table>").unwrap()];
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#x27;", "'"),
        ("&#x2f;", "/"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(text, |t, (entity, c)| t.replace(entity, c))
}

#[sqlx::test(migrations = false)]
async fn the_overview_page_shows_the_numbers_to_a_signed_in_viewer_of_the_app(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let s = shop_on_both_platforms();
    let api = spawn(&pool, s.clone()).await;
    let res = client()
        .get(api.url("/console/overview"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "no session: sign in");

    backlog(&pool).await;
    // The last hour's tries as the completer would have counted them.
    sqlx::query(
        "INSERT INTO pushrelay.attempt_counts (minute, app, platform, outcome, reason, count)
         VALUES (date_trunc('minute', now()), 'bank', 'ios', 'delivered', 'none', 45),
                (date_trunc('minute', now()) - interval '20 minutes', 'bank', 'ios', 'delivered', 'none', 5),
                (date_trunc('minute', now()), 'bank', 'ios', 'token_dead', 'Unregistered', 7),
                (date_trunc('minute', now()), 'bank', 'ios', 'transient', 'ServiceUnavailable', 3),
                (date_trunc('minute', now()) - interval '2 hours', 'bank', 'ios', 'transient', 'timeout', 99),
                (date_trunc('minute', now()), 'shop', 'android', 'delivered', 'none', 11)",
    )
    .execute(&pool)
    .await
    .unwrap();
    device(&pool, SHOP, "s1", Platform::Ios, &ios_token("01", 1)).await;
    let campaign = shop_campaign(
        &pool,
        &s,
        "<b>winter</b> sale",
        Schedule {
            at: Some(Utc::now() + Duration::hours(2)),
            ..Schedule::default()
        },
    )
    .await;

    let bank = sign_in(&api, &key(&pool, &["read"], Some(&[APP])).await).await;
    let page = overview_page(&api, &bank).await;
    assert!(page.contains("<h1>Overview</h1>"), "{page}");
    let holds = table_text(&page, "holds");
    assert!(
        holds.contains(
            "bank iOS production ‖ paused : the provider rejected the app's setup \
             InvalidProviderToken check the APNs key id and team id"
        ) && holds.contains("(in "),
        "{holds}"
    );
    let queue = table_text(&page, "queue");
    assert!(
        queue.contains("bank iOS 1 3 min 1 0") && queue.contains("bank Android 0 nothing due 0 1"),
        "{queue}"
    );
    assert!(
        table_text(&page, "outbox").contains("bank 2 2 min 1"),
        "{}",
        table_text(&page, "outbox")
    );
    let outcomes = table_text(&page, "outcomes");
    assert!(
        outcomes.contains("bank iOS 60 50 (83.3 %) 3 7 0 0 0"),
        "the 2-hour-old timeouts are not in the last hour: {outcomes}"
    );
    assert!(!outcomes.contains("shop"), "{outcomes}");
    let failures = table_text(&page, "failures");
    assert!(
        failures.contains("Unregistered ✗ token dead bank iOS 7")
            && failures.contains("ServiceUnavailable ↻ transient error bank iOS 3")
            && failures.find("Unregistered") < failures.find("ServiceUnavailable")
            && !failures.contains("timeout"),
        "{failures}"
    );
    assert!(
        page.contains("id=\"campaigns-none\""),
        "not the bank's campaign"
    );

    let shop = sign_in(&api, &key(&pool, &["read"], Some(&[SHOP])).await).await;
    let page = overview_page(&api, &shop).await;
    assert!(page.contains("id=\"holds-none\"") && page.contains("id=\"queue-none\""));
    assert!(!page.contains("InvalidProviderToken"));
    assert!(table_text(&page, "outcomes").contains("shop Android 11 11 (100.0 %)"));
    assert!(page.contains("id=\"failures-none\""));
    let campaigns = table_text(&page, "campaigns");
    assert!(
        campaigns.contains(&format!(
            "<b>winter</b> sale {} shop … scheduled",
            campaign.id
        )),
        "the name is escaped text: {campaigns}"
    );
    assert!(
        page.contains("&lt;b&gt;winter&lt;&#x2f;b&gt; sale")
            || page.contains("&lt;b&gt;winter&lt;/b&gt; sale")
    );
    assert!(
        page.contains("<progress max=\"100\" value=\"0.0\">"),
        "{page}"
    );
}

//! Campaigns, end to end against PostgreSQL: who a segment and a user list
//! reach, consent, local-time schedules and quiet hours under a clock the
//! test moves, the throttle's pace, urgent alerts ahead of a campaign,
//! pause/resume/cancel, and progress counted from the rows.
//!
//! The store's `pump` takes the clock as an argument, so schedules and
//! throttles are checked by stepping a simulated `now` and reading what
//! the rows say, never by waiting. Sending is the real daemon's.
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use common::{count, start, stop, wait_for, APP, OPEN};
use pushrelay::config::Settings;
use pushrelay::model::{Platform, Priority};
use pushrelay::store::campaigns::{
    self, Campaign, CampaignError, CampaignState, Content, Context, NewCampaign, PumpLimits, Reach,
    Schedule, Segment,
};
use pushrelay::store::receipts::{self, Event, Report};
use pushrelay::worker::campaigns::{context, limits};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

// ---------------------------------------------------------------- helpers

/// A device as a mobile backend would have registered it.
#[derive(Clone)]
struct Dev {
    app: &'static str,
    user: String,
    platform: &'static str,
    /// None: a fresh token the simulator delivers to.
    token: Option<String>,
    environment: &'static str,
    locale: &'static str,
    timezone: &'static str,
    app_version: Option<&'static str>,
    tags: Vec<&'static str>,
    attributes: Value,
    consent: Value,
    seen_days_ago: Option<i32>,
}

impl Default for Dev {
    fn default() -> Self {
        Dev {
            app: APP,
            user: "u".into(),
            platform: "ios",
            token: None,
            environment: "production",
            locale: "en",
            timezone: "UTC",
            app_version: None,
            tags: vec![],
            attributes: json!({}),
            consent: json!({}),
            seen_days_ago: None,
        }
    }
}

fn dev(user: &str, platform: &'static str) -> Dev {
    Dev {
        user: user.into(),
        platform,
        ..Dev::default()
    }
}

static TOKENS: AtomicU32 = AtomicU32::new(1);

async fn add(pool: &PgPool, d: Dev) -> i64 {
    let token = d.token.clone().unwrap_or_else(|| {
        let n = TOKENS.fetch_add(1, Ordering::Relaxed);
        match d.platform {
            // Zero-padded: no simulator rule's prefix.
            "ios" => format!("{n:064x}"),
            _ => format!("fcm-{n}"),
        }
    });
    sqlx::query_scalar(
        "INSERT INTO pushrelay.devices
             (app, user_id, platform, token, environment, locale, timezone, app_version, tags,
              attributes, consent, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() - $12 * interval '1 day')
         RETURNING id",
    )
    .bind(d.app)
    .bind(&d.user)
    .bind(d.platform)
    .bind(token)
    .bind(d.environment)
    .bind(d.locale)
    .bind(d.timezone)
    .bind(d.app_version)
    .bind(&d.tags)
    .bind(&d.attributes)
    .bind(&d.consent)
    .bind(d.seen_days_ago)
    .fetch_one(pool)
    .await
    .expect("insert device")
}

fn apps() -> Vec<String> {
    vec![APP.into()]
}

/// A bulk campaign to `segment`, due now.
fn new_campaign(segment: Segment) -> NewCampaign {
    NewCampaign {
        app: APP.into(),
        name: "spring savings".into(),
        content: Content {
            title: Some("Spring".into()),
            body: Some("3% on savings".into()),
            ..Content::default()
        },
        segment,
        ..NewCampaign::default()
    }
}

fn segment(v: Value) -> Segment {
    serde_json::from_value(v).expect("a valid segment")
}

async fn create(
    pool: &PgPool,
    ctx: &Context,
    new: &NewCampaign,
    now: DateTime<Utc>,
) -> (Campaign, Reach) {
    campaigns::create(pool, ctx, &apps(), new, now)
        .await
        .unwrap_or_else(|e| panic!("create {:?}: {e}", new.segment))
}

/// The campaign's targeted devices in `states` (any state: empty).
async fn targets(pool: &PgPool, id: Uuid, states: &[&str]) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT device_id FROM pushrelay.campaign_targets
          WHERE campaign_id = $1 AND (cardinality($2::text[]) = 0 OR state = ANY($2))
          ORDER BY device_id",
    )
    .bind(id)
    .bind(states)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn scalar(pool: &PgPool, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn big_limits() -> PumpLimits {
    PumpLimits {
        batch: 10_000,
        backlog: 10_000,
        evaluate_chunk: 10_000,
    }
}

/// Pumps at `now` until a pass has nothing more to do at once.
async fn pump_all(pool: &PgPool, ctx: &Context, l: PumpLimits, now: DateTime<Utc>) {
    for _ in 0..1000 {
        let p = campaigns::pump(pool, ctx, l, now).await.unwrap();
        if !p.more {
            return;
        }
    }
    panic!("the pump never ran out of work at {now}");
}

fn settings_with_quiet_hours(window: &str) -> Settings {
    let mut s = common::settings();
    s.apps.get_mut(APP).unwrap().quiet_hours = Some(window.parse().unwrap());
    s
}

// --------------------------------------------------- audience: segments

#[sqlx::test(migrations = false)]
async fn each_segment_filter_and_the_user_list_reach_exactly_the_right_devices(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    let ctx = context(&common::settings());
    let d1 = add(
        &pool,
        Dev {
            locale: "de-AT",
            timezone: "Europe/Berlin",
            app_version: Some("5.10"),
            tags: vec!["vip", "savings"],
            attributes: json!({"tier": "gold", "country": "AT"}),
            seen_days_ago: Some(1),
            ..dev("u1", "ios")
        },
    )
    .await;
    let d2 = add(
        &pool,
        Dev {
            locale: "de_DE",
            timezone: "Europe/Berlin",
            app_version: Some("5.9"),
            tags: vec!["savings"],
            attributes: json!({"tier": "silver"}),
            seen_days_ago: Some(10),
            ..dev("u2", "android")
        },
    )
    .await;
    let d3 = add(
        &pool,
        Dev {
            environment: "sandbox",
            locale: "en-US",
            timezone: "America/New_York",
            app_version: Some("6.0.1"),
            attributes: json!({"tier": "gold", "country": "US"}),
            ..dev("u3", "ios")
        },
    )
    .await;
    // No app version reported.
    let d4 = add(
        &pool,
        Dev {
            locale: "en",
            timezone: "Pacific/Auckland",
            tags: vec!["vip"],
            seen_days_ago: Some(2),
            ..dev("u4", "android")
        },
    )
    .await;
    let d5 = add(
        &pool,
        Dev {
            locale: "fr",
            timezone: "Europe/Paris",
            app_version: Some("5.10.0-beta"),
            tags: vec!["vip", "loans"],
            attributes: json!({"tier": "gold", "nested": {"a": 1, "b": 2}}),
            seen_days_ago: Some(40),
            ..dev("u5", "ios")
        },
    )
    .await;
    // u1's second device.
    let d6 = add(
        &pool,
        Dev {
            locale: "de-CH",
            timezone: "Europe/Zurich",
            app_version: Some("5.10.0"),
            tags: vec!["vip"],
            attributes: json!({"tier": "gold"}),
            seen_days_ago: Some(1),
            ..dev("u1", "android")
        },
    )
    .await;
    // Never reached: an invalidated device, another app's device.
    let gone = add(
        &pool,
        Dev {
            locale: "de",
            ..dev("u6", "ios")
        },
    )
    .await;
    sqlx::query("UPDATE pushrelay.devices SET invalidated_at = now() WHERE id = $1")
        .bind(gone)
        .execute(&pool)
        .await
        .unwrap();
    add(
        &pool,
        Dev {
            app: "shop",
            locale: "de",
            ..dev("u1", "ios")
        },
    )
    .await;

    let cases: Vec<(Value, Vec<i64>)> = vec![
        (json!({"all": true}), vec![d1, d2, d3, d4, d5, d6]),
        (json!({"platforms": ["ios"]}), vec![d1, d3, d5]),
        (
            json!({"platforms": ["android"], "environments": ["production"]}),
            vec![d2, d4, d6],
        ),
        (json!({"environments": ["sandbox"]}), vec![d3]),
        // A language matches its regional locales; '_' and case do not matter.
        (json!({"locales": ["de"]}), vec![d1, d2, d6]),
        (json!({"locales": ["de_at"]}), vec![d1]),
        (json!({"locales": ["en"]}), vec![d3, d4]),
        (json!({"locales": ["en-US", "fr"]}), vec![d3, d5]),
        (
            json!({"timezones": ["Europe/Berlin", "Pacific/Auckland"]}),
            vec![d1, d2, d4],
        ),
        // "5.10" > "5.9"; "5.10.0" and "5.10.0-beta" are 5.10; a device
        // that never reported its version is in no range.
        (
            json!({"app_version": {"min": "5.10"}}),
            vec![d1, d3, d5, d6],
        ),
        (
            json!({"app_version": {"max": "5.10"}}),
            vec![d1, d2, d5, d6],
        ),
        (json!({"app_version": {"max": "5.9"}}), vec![d2]),
        (
            json!({"app_version": {"min": "5.9.1", "max": "6"}}),
            vec![d1, d5, d6],
        ),
        (json!({"tags_all": ["vip", "savings"]}), vec![d1]),
        (json!({"tags_any": ["loans", "savings"]}), vec![d1, d2, d5]),
        (json!({"tags_none": ["vip"]}), vec![d2, d3]),
        (
            json!({"attributes": {"tier": "gold"}}),
            vec![d1, d3, d5, d6],
        ),
        (
            json!({"attributes": {"tier": "gold", "country": "AT"}}),
            vec![d1],
        ),
        (json!({"attributes": {"nested": {"a": 1}}}), vec![d5]),
        (json!({"last_seen_within_days": 7}), vec![d1, d4, d6]),
        // Every filter given must match.
        (
            json!({"platforms": ["ios"], "tags_any": ["vip"], "locales": ["de", "fr"]}),
            vec![d1, d5],
        ),
    ];
    let now = Utc::now();
    for (filter, want) in cases {
        let new = new_campaign(segment(filter.clone()));
        let (c, reach) = create(&pool, &ctx, &new, now).await;
        assert_eq!(reach.devices, want.len() as i64, "preview of {filter}");
        campaigns::pump(&pool, &ctx, big_limits(), now)
            .await
            .unwrap();
        assert_eq!(targets(&pool, c.id, &[]).await, want, "segment {filter}");
    }

    // A user list uploaded as CSV, in chunks cut anywhere (the header
    // too): a header line, CRLF, a blank line, a duplicate, spaces, and a
    // user without devices.
    let chunks = [
        "us",
        "er_id\r\nu1\r",
        "\nu3\r\n\r\nu3\r\n u5 ",
        "\r\nnobody\r\n",
    ];
    let body = futures_util::stream::iter(
        chunks
            .iter()
            .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c.as_bytes()))),
    );
    let list = campaigns::upload_user_list(&pool, APP, "march winners", body)
        .await
        .expect("upload the list");
    assert_eq!(list.users, 4, "{list:?}");
    let members: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM pushrelay.user_list_members WHERE list_id = $1 ORDER BY user_id",
    )
    .bind(list.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(members, ["nobody", "u1", "u3", "u5"]);
    // A spreadsheet's export: a byte order mark, the header in another
    // case, no newline at the end. And a list without a header.
    for (csv, want) in [
        ("\u{feff}User_ID\nu2\nu4", 2),
        ("u2", 1),
        ("\"u2\"\n\"u4\"\n", 2),
    ] {
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(csv))]);
        let list = campaigns::upload_user_list(&pool, APP, "export", body)
            .await
            .unwrap_or_else(|e| panic!("{csv:?}: {e}"));
        assert_eq!(list.users, want, "{csv:?}");
        assert_eq!(
            scalar(
                &pool,
                "SELECT count(*) FROM pushrelay.user_list_members
                  WHERE list_id = $1 AND user_id NOT IN ('u2', 'u4')",
                list.id
            )
            .await,
            0,
            "{csv:?}"
        );
    }

    for (filter, want) in [
        (json!({}), vec![d1, d3, d5, d6]),
        // The list and the segment intersected.
        (json!({"tags_any": ["vip"]}), vec![d1, d5, d6]),
        (json!({"platforms": ["android"]}), vec![d6]),
    ] {
        let new = NewCampaign {
            user_list_id: Some(list.id),
            ..new_campaign(segment(filter.clone()))
        };
        let (c, reach) = create(&pool, &ctx, &new, now).await;
        assert_eq!(reach.devices, want.len() as i64, "list ∩ {filter}");
        campaigns::pump(&pool, &ctx, big_limits(), now)
            .await
            .unwrap();
        assert_eq!(targets(&pool, c.id, &[]).await, want, "list ∩ {filter}");
    }

    // A list with nobody of the segment reaches no device: refused.
    let new = NewCampaign {
        user_list_id: Some(list.id),
        ..new_campaign(segment(json!({"locales": ["ja"]})))
    };
    let e = campaigns::create(&pool, &ctx, &apps(), &new, now)
        .await
        .unwrap_err();
    assert!(matches!(e, CampaignError::ReachesNoDevice { .. }), "{e}");
}

#[sqlx::test(migrations = false)]
async fn devices_without_consent_are_skipped_and_counted_and_later_devices_are_not_added(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 100).await;
    // u1..u70 consent to marketing, u71..u85 refused it, u86..u100 never said.
    sqlx::query(
        "UPDATE pushrelay.devices
            SET consent = CASE WHEN substr(user_id, 2)::int <= 70 THEN '{\"marketing\": true}'
                               ELSE '{\"marketing\": false, \"service\": true}' END::jsonb
          WHERE substr(user_id, 2)::int <= 85",
    )
    .execute(&pool)
    .await
    .unwrap();
    let settings = common::settings();
    let ctx = context(&settings);
    let now = Utc::now();
    let new = NewCampaign {
        category: Some("marketing".into()),
        ..new_campaign(segment(json!({"all": true})))
    };
    let (c, reach) = create(&pool, &ctx, &new, now).await;
    assert_eq!(
        (reach.devices, reach.users, reach.no_consent),
        (140, 70, 60)
    );
    assert_eq!(reach.by_platform[&Platform::Ios].no_consent, 30);
    // The audience is evaluated 50 device ids a step.
    let l = PumpLimits {
        evaluate_chunk: 50,
        ..limits(&settings)
    };
    let p = campaigns::pump(&pool, &ctx, l, now).await.unwrap();
    assert!(p.more, "{p:?}");
    // Registered after the start, consenting, while the audience is being
    // evaluated: not added.
    let late = add(
        &pool,
        Dev {
            consent: json!({"marketing": true}),
            ..dev("u1", "ios")
        },
    )
    .await;
    pump_all(&pool, &ctx, l, now).await;

    let without: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM pushrelay.devices
          WHERE app = 'bank' AND consent ->> 'marketing' IS DISTINCT FROM 'true' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(without.len(), 60);
    assert_eq!(targets(&pool, c.id, &["no_consent"]).await, without);
    assert_eq!(targets(&pool, c.id, &["queued"]).await.len(), 140);
    assert!(!targets(&pool, c.id, &[]).await.contains(&late));

    let daemon = start(&pool, settings);
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;
    let delivered: Vec<i64> = sqlx::query_scalar(
        "SELECT device_id FROM pushrelay.deliveries
          WHERE campaign_id = $1 AND state = 'delivered' ORDER BY device_id",
    )
    .bind(c.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(delivered, targets(&pool, c.id, &["queued"]).await);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries d JOIN pushrelay.devices v ON v.id = d.device_id
              WHERE v.consent ->> 'marketing' IS DISTINCT FROM 'true'"
        )
        .await,
        0,
        "a device without consent got a delivery"
    );
    let progress = campaigns::progress(&pool, c.id, Utc::now()).await.unwrap();
    assert_eq!(
        (
            progress.total.targeted,
            progress.total.no_consent,
            progress.total.delivered
        ),
        (140, 60, 140),
        "{progress:?}"
    );
    assert!(progress.finished, "{progress:?}");
}

// ------------------------------------ schedules, quiet hours, the clock

#[sqlx::test(migrations = false)]
async fn a_local_time_campaign_reaches_each_timezone_at_its_own_nine_oclock(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    // Quiet hours do not touch 09:00.
    let settings = settings_with_quiet_hours("21:00-08:00");
    let ctx = context(&settings);
    let mut zone: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (i, tz) in ["Pacific/Auckland", "Europe/Berlin", "America/New_York"]
        .into_iter()
        .cycle()
        .take(300)
        .enumerate()
    {
        let platform = if i % 2 == 0 { "ios" } else { "android" };
        let id = add(
            &pool,
            Dev {
                timezone: tz,
                ..dev(&format!("u{i}"), platform)
            },
        )
        .await;
        zone.entry(tz).or_default().push(id);
    }
    let (auckland, berlin, new_york) = (
        zone["Pacific/Auckland"].clone(),
        zone["Europe/Berlin"].clone(),
        zone["America/New_York"].clone(),
    );

    // 09:00 on 15 January 2027: 20:00 UTC the day before in Auckland
    // (UTC+13), 08:00 UTC in Berlin (UTC+1), 14:00 UTC in New York (UTC−5).
    let created = t("2027-01-14T12:00:00Z");
    let new = NewCampaign {
        schedule: Schedule {
            local_time: Some("09:00".into()),
            date: Some("2027-01-15".parse().unwrap()),
            ..Schedule::default()
        },
        ttl_seconds: Some(3600),
        ..new_campaign(segment(json!({"all": true})))
    };
    let (c, reach) = create(&pool, &ctx, &new, created).await;
    assert_eq!(reach.largest_wave, 100);
    // The audience is evaluated when 09:00 first comes anywhere (UTC+14).
    assert_eq!(c.starts_at, t("2027-01-14T19:00:00Z"));
    let l = limits(&settings);

    let steps: [(&str, CampaignState, Vec<i64>); 7] = [
        ("2027-01-14T18:59:59Z", CampaignState::Scheduled, vec![]),
        ("2027-01-14T19:00:00Z", CampaignState::Running, vec![]),
        ("2027-01-14T19:59:59Z", CampaignState::Running, vec![]),
        (
            "2027-01-14T20:00:00Z",
            CampaignState::Running,
            auckland.clone(),
        ),
        (
            "2027-01-15T08:00:00Z",
            CampaignState::Running,
            [auckland.clone(), berlin.clone()].concat(),
        ),
        (
            "2027-01-15T13:59:00Z",
            CampaignState::Running,
            [auckland.clone(), berlin.clone()].concat(),
        ),
        (
            "2027-01-15T14:00:00Z",
            CampaignState::Completed,
            [auckland.clone(), berlin.clone(), new_york.clone()].concat(),
        ),
    ];
    for (now, state, queued) in steps {
        pump_all(&pool, &ctx, l, t(now)).await;
        let got = campaigns::get(&pool, c.id, None).await.unwrap().unwrap();
        assert_eq!(got.state, state, "at {now}");
        assert_eq!(
            targets(&pool, c.id, &["queued"]).await,
            sorted(queued),
            "queued at {now}"
        );
    }
    assert_eq!(targets(&pool, c.id, &[]).await.len(), 300);
    // Each queued in its own window, never after its expiry.
    let late = scalar(
        &pool,
        "SELECT count(*) FROM pushrelay.campaign_targets
          WHERE campaign_id = $1 AND NOT (queued_at >= due_at AND queued_at < expires_at
            AND (due_at AT TIME ZONE timezone)::time = '09:00')",
        c.id,
    )
    .await;
    assert_eq!(late, 0);
    // The notifications carry what is left of the TTL.
    let ttl = scalar(
        &pool,
        "SELECT max(ttl_seconds)::bigint FROM pushrelay.notifications WHERE campaign_id = $1",
        c.id,
    )
    .await;
    assert_eq!(ttl, 3600);
}

#[sqlx::test(migrations = false)]
async fn quiet_hours_defer_bulk_to_their_end_never_past_the_ttl_and_never_touch_urgent(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    let settings = settings_with_quiet_hours("21:00-08:00");
    let ctx = context(&settings);
    let l = limits(&settings);
    let mut zone: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (i, tz) in ["Pacific/Auckland", "Europe/Berlin", "America/New_York"]
        .into_iter()
        .cycle()
        .take(150)
        .enumerate()
    {
        let id = add(
            &pool,
            Dev {
                timezone: tz,
                ..dev(&format!("u{i}"), if i % 2 == 0 { "ios" } else { "android" })
            },
        )
        .await;
        zone.entry(tz).or_default().push(id);
    }
    let (auckland, berlin, new_york) = (
        zone["Pacific/Auckland"].clone(),
        zone["Europe/Berlin"].clone(),
        zone["America/New_York"].clone(),
    );

    // At 12:00 UTC it is 01:00 in Auckland (quiet until 08:00 local =
    // 19:00 UTC, 7 h on), 13:00 in Berlin, 07:00 in New York (quiet until
    // 08:00 local = 13:00 UTC, 1 h on). A TTL of 3 h outlasts New York's
    // wait but not Auckland's.
    let created = t("2027-01-15T11:00:00Z");
    let at = t("2027-01-15T12:00:00Z");
    let bulk = NewCampaign {
        schedule: Schedule {
            at: Some(at),
            ..Schedule::default()
        },
        ttl_seconds: Some(3 * 3600),
        ..new_campaign(segment(json!({"all": true})))
    };
    let (bulk, _) = create(&pool, &ctx, &bulk, created).await;
    let urgent = NewCampaign {
        priority: Some(Priority::Urgent),
        name: "security notice".into(),
        ..bulk_like(&bulk)
    };
    let (urgent, _) = create(&pool, &ctx, &urgent, created).await;

    pump_all(&pool, &ctx, l, at).await;
    // The urgent campaign goes everywhere at once, quiet hours or not.
    assert_eq!(targets(&pool, urgent.id, &["queued"]).await.len(), 150);
    assert_eq!(
        campaigns::get(&pool, urgent.id, None)
            .await
            .unwrap()
            .unwrap()
            .state,
        CampaignState::Completed
    );
    // Bulk: Berlin now, New York waits, Auckland can never be sent in time.
    assert_eq!(targets(&pool, bulk.id, &["queued"]).await, berlin);
    assert_eq!(targets(&pool, bulk.id, &["pending"]).await, new_york);
    assert_eq!(targets(&pool, bulk.id, &["expired"]).await, auckland);
    let due: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT DISTINCT due_at FROM pushrelay.campaign_targets
          WHERE campaign_id = $1 AND state = 'pending'",
    )
    .bind(bulk.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(due, [t("2027-01-15T13:00:00Z")]);

    pump_all(&pool, &ctx, l, t("2027-01-15T12:59:59Z")).await;
    assert_eq!(targets(&pool, bulk.id, &["queued"]).await, berlin);
    pump_all(&pool, &ctx, l, t("2027-01-15T13:00:00Z")).await;
    assert_eq!(
        targets(&pool, bulk.id, &["queued"]).await,
        sorted([berlin.clone(), new_york.clone()].concat())
    );
    assert_eq!(
        campaigns::get(&pool, bulk.id, None)
            .await
            .unwrap()
            .unwrap()
            .state,
        CampaignState::Completed
    );

    // Auckland's devices got no notification, and so never a delivery.
    let daemon = start(&pool, settings);
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;
    for id in &auckland {
        let n = sqlx::query_scalar::<_, i64>(
            "SELECT (SELECT count(*) FROM pushrelay.notifications
                      WHERE campaign_id = $1 AND $2 = ANY(device_ids))
                  + (SELECT count(*) FROM pushrelay.deliveries
                      WHERE campaign_id = $1 AND device_id = $2)",
        )
        .bind(bulk.id)
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 0, "expired device {id} was sent to");
    }
    let delivered = |id| {
        scalar(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE campaign_id = $1 AND state = 'delivered'",
            id,
        )
    };
    assert_eq!(delivered(bulk.id).await, 100);
    assert_eq!(delivered(urgent.id).await, 150);
    let p = campaigns::progress(&pool, bulk.id, Utc::now())
        .await
        .unwrap();
    assert_eq!((p.total.expired, p.total.delivered), (50, 100), "{p:?}");
}

fn bulk_like(c: &Campaign) -> NewCampaign {
    NewCampaign {
        app: c.app.clone(),
        name: c.name.clone(),
        content: c.content.clone(),
        ttl_seconds: Some(i64::from(c.ttl_seconds)),
        segment: c.segment.clone(),
        schedule: c.schedule.clone(),
        ..NewCampaign::default()
    }
}

// ------------------------------------------------------------- throttle

#[sqlx::test(migrations = false)]
async fn the_throttle_holds_the_configured_rate_per_window(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 500).await;
    let settings = common::settings();
    let ctx = context(&settings);
    let t0 = t("2027-03-01T10:00:00Z");
    let new = NewCampaign {
        schedule: Schedule {
            at: Some(t0),
            ..Schedule::default()
        },
        throttle_per_minute: Some(600),
        ttl_seconds: Some(3600),
        ..new_campaign(segment(json!({"all": true})))
    };
    let (c, _) = create(&pool, &ctx, &new, t0 - Duration::minutes(5)).await;
    // 60 simulated seconds in steps of 100 ms, two processes pumping at
    // each step: the pace lives in the campaign's row, not in a process.
    let other = common::pool(&opts).await;
    for step in 0..600 {
        let now = t0 + Duration::milliseconds(100 * step);
        let (a, b) = tokio::join!(
            campaigns::pump(&pool, &ctx, limits(&settings), now),
            campaigns::pump(&other, &ctx, limits(&settings), now)
        );
        a.unwrap();
        b.unwrap();
    }
    let windows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT floor(extract(epoch FROM queued_at - $2) / 10)::int AS w, count(*)
           FROM pushrelay.campaign_targets
          WHERE campaign_id = $1 AND state = 'queued'
          GROUP BY w ORDER BY w",
    )
    .bind(c.id)
    .bind(t0)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(windows.len(), 6, "{windows:?}");
    // 600 a minute is 100 per 10 s; a second's burst (10) at most on top.
    for (w, n) in &windows {
        assert!(
            (95..=110).contains(n),
            "window {w}: {n} queued (want ~100): {windows:?}"
        );
    }
    let total: i64 = windows.iter().map(|w| w.1).sum();
    assert!((600..=610).contains(&total), "{total} queued in a minute");
    // Nothing is lost by the pace: the rest is still waiting.
    assert_eq!(
        targets(&pool, c.id, &["pending"]).await.len() as i64,
        1000 - total
    );
}

/// Settings whose campaigns take seconds to send: 10 bulk slots of 20
/// per platform, each send `latency_ms`, fan-out in batches of
/// `fanout_batch`.
fn slow_bulk(latency_ms: u64, fanout_batch: u32) -> Settings {
    let mut s = common::settings();
    for lane in [&mut s.lanes.ios, &mut s.lanes.android] {
        lane.concurrency = 20;
        lane.bulk_share = 0.5;
    }
    s.worker.fanout_batch = fanout_batch;
    s.simulator.latency_ms = latency_ms;
    s.simulator.latency_jitter_ms = 0;
    s
}

#[sqlx::test(migrations = false)]
async fn urgent_alerts_are_sent_ahead_of_a_running_campaigns_bulk_deliveries(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 1000).await;
    // 20 ms a send: the campaign's 2000 deliveries take seconds to drain.
    let s = slow_bulk(20, 50);
    let ctx = context(&s);
    let (c, _) = create(
        &pool,
        &ctx,
        &new_campaign(segment(json!({"all": true}))),
        Utc::now(),
    )
    .await;
    let daemon = start(&pool, s);
    let sent = "SELECT least(count(*), 100) FROM pushrelay.deliveries
                 WHERE campaign_id IS NOT NULL AND state = 'delivered'";
    wait_for(&pool, sent, 100).await;
    common::notify_range(&pool, 1, 11, "urgent").await;
    wait_for(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE priority = 'urgent' AND state = 'delivered'",
        20,
    )
    .await;
    // When the last urgent alert was sent, most of the campaign, queued
    // long before it, had not been.
    let later = scalar(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries d
          WHERE d.campaign_id = $1 AND NOT EXISTS (
                SELECT 1 FROM pushrelay.attempts a
                 WHERE a.delivery_id = d.id AND a.started_at <= (
                       SELECT max(u.started_at) FROM pushrelay.attempts u
                         JOIN pushrelay.deliveries ud ON ud.id = u.delivery_id
                        WHERE ud.priority = 'urgent'))",
        c.id,
    )
    .await;
    let not_yet_fanned_out = 2000
        - scalar(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE campaign_id = $1",
            c.id,
        )
        .await;
    assert!(
        later + not_yet_fanned_out >= 1000,
        "only {} of the campaign's 2000 deliveries were sent after the urgent alerts",
        later + not_yet_fanned_out
    );
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM pushrelay.deliveries WHERE campaign_id = $1 AND state = 'delivered'",
            c.id
        )
        .await,
        2000
    );
}

// ------------------------------------------------ pause, resume, cancel

#[sqlx::test(migrations = false)]
async fn pause_stops_within_one_batch_and_resume_sends_the_rest_exactly_once(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 500).await;
    let settings = common::settings();
    let ctx = context(&settings);
    let l = PumpLimits {
        batch: 100,
        backlog: 200,
        evaluate_chunk: 10_000,
    };
    let now = Utc::now();
    let (c, _) = create(
        &pool,
        &ctx,
        &new_campaign(segment(json!({"all": true}))),
        now,
    )
    .await;
    let p = campaigns::pump(&pool, &ctx, l, now).await.unwrap();
    assert_eq!(p.queued, 100, "{p:?}");

    // Fan-out holds a few of the batch's notifications when the pause comes.
    let mut fanout = pool.begin().await.unwrap();
    let held: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM pushrelay.notifications WHERE campaign_id = $1
          ORDER BY id LIMIT 5 FOR UPDATE",
    )
    .bind(c.id)
    .fetch_all(&mut *fanout)
    .await
    .unwrap();
    let paused = campaigns::pause(&pool, c.id, None).await.unwrap();
    assert_eq!(paused.state, CampaignState::Paused);
    fanout.commit().await.unwrap();
    // Paused twice: the same.
    campaigns::pause(&pool, c.id, None).await.unwrap();

    // Only what fan-out held is left to send; the rest went back to wait.
    let pending: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM pushrelay.notifications WHERE campaign_id = $1 ORDER BY id",
    )
    .bind(c.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(pending, held);
    let in_flight = scalar(
        &pool,
        "SELECT count(*) FROM pushrelay.campaign_targets WHERE campaign_id = $1 AND state = 'queued'",
        c.id,
    )
    .await;
    assert!(in_flight > 0 && in_flight <= 10, "{in_flight}");
    // A paused campaign's pump steps create nothing.
    for s in 1..=5 {
        let p = campaigns::pump(&pool, &ctx, l, now + Duration::seconds(s))
            .await
            .unwrap();
        assert_eq!(p.queued, 0);
    }
    let daemon = start(&pool, settings);
    wait_for(&pool, OPEN, 0).await;
    let notifications = "SELECT count(*) FROM pushrelay.notifications WHERE campaign_id = $1";
    assert_eq!(scalar(&pool, notifications, c.id).await, 5);
    let deliveries = "SELECT count(*) FROM pushrelay.deliveries WHERE campaign_id = $1";
    assert_eq!(scalar(&pool, deliveries, c.id).await, in_flight);

    // Resumed: the daemon's pump sends the rest, each device once.
    let resumed = campaigns::resume(&pool, c.id, None).await.unwrap();
    assert_eq!(resumed.state, CampaignState::Running);
    campaigns::resume(&pool, c.id, None).await.unwrap();
    wait_for(
        &pool,
        &format!(
            "SELECT count(*) FROM pushrelay.deliveries WHERE campaign_id = '{}' AND state = 'delivered'",
            c.id
        ),
        1000,
    )
    .await;
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;
    let (deliveries, devices): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT device_id) FROM pushrelay.deliveries WHERE campaign_id = $1",
    )
    .bind(c.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((deliveries, devices), (1000, 1000));
    let c = campaigns::get(&pool, c.id, None).await.unwrap().unwrap();
    assert_eq!(c.state, CampaignState::Completed);
}

#[sqlx::test(migrations = false)]
async fn cancel_leaves_nothing_pending_and_two_cancels_at_once_are_harmless(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 300).await;
    let mut s = common::settings();
    s.simulator.latency_ms = 5;
    let ctx = context(&s);
    // 1200 a minute: the 600 devices would take half a minute.
    let new = NewCampaign {
        throttle_per_minute: Some(1200),
        ..new_campaign(segment(json!({"all": true})))
    };
    let (c, _) = create(&pool, &ctx, &new, Utc::now()).await;
    let daemon = start(&pool, s);
    wait_for(
        &pool,
        &format!(
            "SELECT least(count(*), 20) FROM pushrelay.deliveries
              WHERE campaign_id = '{}' AND state = 'delivered'",
            c.id
        ),
        20,
    )
    .await;
    let (a, b) = tokio::join!(
        campaigns::cancel(&pool, c.id, None),
        campaigns::cancel(&pool, c.id, None)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.state, b.state),
        (CampaignState::Cancelled, CampaignState::Cancelled)
    );
    assert_eq!(
        a.cancelled_at, b.cancelled_at,
        "the second cancel changed it"
    );
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;

    let left = scalar(
        &pool,
        "SELECT (SELECT count(*) FROM pushrelay.campaign_targets
                  WHERE campaign_id = $1 AND state = 'pending')
              + (SELECT count(*) FROM pushrelay.notifications
                  WHERE campaign_id = $1 AND state = 'pending')
              + (SELECT count(*) FROM pushrelay.deliveries
                  WHERE campaign_id = $1 AND state IN ('pending', 'sending'))",
        c.id,
    )
    .await;
    assert_eq!(
        left, 0,
        "something of the cancelled campaign is still pending"
    );
    let cancelled = targets(&pool, c.id, &["cancelled"]).await.len();
    assert!(cancelled > 0, "the cancel came after the whole campaign");
    // What was sent stays sent.
    let delivered = scalar(
        &pool,
        "SELECT count(*) FROM pushrelay.deliveries WHERE campaign_id = $1 AND state = 'delivered'",
        c.id,
    )
    .await;
    assert!(delivered >= 20);
    let p = campaigns::progress(&pool, c.id, Utc::now()).await.unwrap();
    assert_eq!(p.total.queued, 0, "{p:?}");
    assert_eq!(p.total.scheduled, 0, "{p:?}");
    assert_eq!(p.total.delivered, delivered, "{p:?}");
    assert!(p.finished, "{p:?}");
    // Cancelled is final: pause and resume say so, cancel again is a no-op.
    for e in [
        campaigns::pause(&pool, c.id, None).await.unwrap_err(),
        campaigns::resume(&pool, c.id, None).await.unwrap_err(),
    ] {
        assert!(matches!(e, CampaignError::Finished { .. }), "{e}");
    }
    let again = campaigns::cancel(&pool, c.id, None).await.unwrap();
    assert_eq!(again.cancelled_at, a.cancelled_at);
    let p = campaigns::pump(&pool, &ctx, limits(&common::settings()), Utc::now())
        .await
        .unwrap();
    assert_eq!(p.queued, 0);
}

// -------------------------------------------------------------- progress

#[sqlx::test(migrations = false)]
async fn progress_counts_equal_the_deliveries_and_opened_comes_from_receipts(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 200).await;
    // Some dead tokens (the provider says unregistered) and some the
    // provider refuses for good, on both platforms.
    sqlx::query(
        "UPDATE pushrelay.devices
            SET token = CASE WHEN substr(user_id, 2)::int <= 15
                             THEN 'dead' || substr(token, 5) ELSE 'bad0' || substr(token, 5) END
          WHERE substr(user_id, 2)::int <= 25",
    )
    .execute(&pool)
    .await
    .unwrap();
    let settings = common::settings();
    let ctx = context(&settings);
    let (c, _) = create(
        &pool,
        &ctx,
        &new_campaign(segment(json!({"all": true}))),
        Utc::now(),
    )
    .await;
    // The daemon's own pump sees the campaign through.
    let daemon = start(&pool, settings);
    wait_for(
        &pool,
        &format!(
            "SELECT count(*) FROM pushrelay.deliveries
              WHERE campaign_id = '{}' AND state IN ('delivered', 'failed', 'token_dead')",
            c.id
        ),
        400,
    )
    .await;
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;
    let done = campaigns::get(&pool, c.id, None).await.unwrap().unwrap();
    assert_eq!(done.state, CampaignState::Completed);

    // Some devices report opening it (one twice), one only displaying it.
    let opened: Vec<(Uuid, i64, String)> = sqlx::query_as(
        "SELECT notification_id, device_id, platform FROM pushrelay.deliveries
          WHERE campaign_id = $1 AND state = 'delivered' ORDER BY id LIMIT 10",
    )
    .bind(c.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    for (i, (notification_id, device_id, _)) in opened.iter().enumerate() {
        let events: &[Event] = if i == 0 {
            &[Event::Opened, Event::Opened]
        } else {
            &[Event::Received, Event::Opened]
        };
        for event in events {
            receipts::record(
                &pool,
                &Report {
                    notification_id: *notification_id,
                    device_id: *device_id,
                    event: *event,
                    occurred_at: None,
                },
                None,
            )
            .await
            .unwrap();
        }
    }
    let (n, d, _) = sqlx::query_as::<_, (Uuid, i64, String)>(
        "SELECT notification_id, device_id, platform FROM pushrelay.deliveries
          WHERE campaign_id = $1 AND state = 'delivered' ORDER BY id DESC LIMIT 1",
    )
    .bind(c.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    receipts::record(
        &pool,
        &Report {
            notification_id: n,
            device_id: d,
            event: Event::Displayed,
            occurred_at: None,
        },
        None,
    )
    .await
    .unwrap();

    let p = campaigns::progress(&pool, c.id, Utc::now()).await.unwrap();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT platform, state, count(*) FROM pushrelay.deliveries
          WHERE campaign_id = $1 GROUP BY platform, state",
    )
    .bind(c.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let sql = |platform: &str, state: &str| {
        rows.iter()
            .filter(|r| r.0 == platform && r.1 == state)
            .map(|r| r.2)
            .sum::<i64>()
    };
    for platform in [Platform::Ios, Platform::Android] {
        let counts = p.by_platform[&platform];
        let name = platform.as_str();
        let opened_here = opened.iter().filter(|o| o.2 == name).count() as i64;
        assert_eq!(
            (
                counts.targeted,
                counts.delivered,
                counts.failed,
                counts.token_dead,
                counts.expired,
                counts.queued,
                counts.sent,
                counts.opened,
            ),
            (
                200,
                sql(name, "delivered"),
                sql(name, "failed"),
                sql(name, "token_dead"),
                0,
                0,
                200,
                opened_here,
            ),
            "{platform}: {p:?}"
        );
        assert_eq!(counts.token_dead, 15, "{platform}");
        assert_eq!(counts.failed, 10, "{platform}");
        assert_eq!(counts.delivered, 175, "{platform}");
    }
    assert_eq!(p.total.delivered, 350);
    assert_eq!(p.total.opened, 10);
    assert!(p.finished, "{p:?}");
    assert_eq!(p.eta, None);
}

#[sqlx::test(migrations = false)]
async fn progress_accounts_for_targets_that_never_became_a_delivery(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 50).await;
    let settings = common::settings();
    let ctx = context(&settings);
    let now = Utc::now();
    let all = || new_campaign(segment(json!({"all": true})));

    // Cancelled while its notifications wait for fan-out.
    let (a, _) = create(&pool, &ctx, &all(), now).await;
    campaigns::pump(&pool, &ctx, big_limits(), now)
        .await
        .unwrap();
    assert_eq!(targets(&pool, a.id, &["queued"]).await.len(), 100);
    campaigns::cancel(&pool, a.id, None).await.unwrap();
    let p = campaigns::progress(&pool, a.id, now).await.unwrap();
    assert_eq!((p.total.queued, p.total.cancelled), (0, 100), "{p:?}");
    assert!(p.finished, "{p:?}");

    // Queued, then one device removed and one user's notification left
    // in the outbox past its TTL before fan-out came.
    let (b, _) = create(&pool, &ctx, &all(), now).await;
    campaigns::pump(&pool, &ctx, big_limits(), now)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE pushrelay.devices SET invalidated_at = now()
          WHERE user_id = 'u1' AND platform = 'ios'",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE pushrelay.notifications SET send_at = send_at - interval '2 days'
          WHERE campaign_id = $1 AND user_id = 'u2'",
    )
    .bind(b.id)
    .execute(&pool)
    .await
    .unwrap();
    let daemon = start(&pool, settings);
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;
    let p = campaigns::progress(&pool, b.id, Utc::now()).await.unwrap();
    let t = p.total;
    assert_eq!(
        (t.targeted, t.delivered, t.queued, t.expired, t.dropped),
        (100, 97, 0, 2, 1),
        "{p:?}"
    );
    assert_eq!(
        t.targeted,
        t.scheduled
            + t.queued
            + t.delivered
            + t.failed
            + t.token_dead
            + t.expired
            + t.cancelled
            + t.dropped,
        "{p:?}"
    );
    assert!(p.finished, "{p:?}");
}

#[sqlx::test(migrations = false)]
async fn a_campaign_resumed_after_its_ttl_expires_what_is_left_without_waiting_for_the_throttle(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 50).await;
    let settings = common::settings();
    let ctx = context(&settings);
    let t0 = t("2027-03-01T10:00:00Z");
    // 60 a minute, 10 minutes to live: 100 devices fit.
    let new = NewCampaign {
        schedule: Schedule {
            at: Some(t0),
            ..Schedule::default()
        },
        throttle_per_minute: Some(60),
        ttl_seconds: Some(600),
        ..new_campaign(segment(json!({"all": true})))
    };
    let (c, _) = create(&pool, &ctx, &new, t0 - Duration::minutes(1)).await;
    let l = limits(&settings);
    for s in 0..10 {
        campaigns::pump(&pool, &ctx, l, t0 + Duration::seconds(s))
            .await
            .unwrap();
    }
    assert_eq!(targets(&pool, c.id, &["queued"]).await.len(), 10);
    // The pause takes back the 10 not yet fanned out.
    campaigns::pause(&pool, c.id, None).await.unwrap();
    assert_eq!(targets(&pool, c.id, &["pending"]).await.len(), 100);
    campaigns::resume(&pool, c.id, None).await.unwrap();
    // An hour later every waiting target is past its TTL: one step
    // expires them all and the campaign ends.
    let p = campaigns::pump(&pool, &ctx, l, t0 + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!((p.queued, p.expired, p.completed), (0, 100, 1), "{p:?}");
    let c = campaigns::get(&pool, c.id, None).await.unwrap().unwrap();
    assert_eq!(c.state, CampaignState::Completed);
}

#[sqlx::test(migrations = false)]
async fn quiet_hours_and_version_order_in_sql(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = common::pool(&opts).await;
    let quiet = |at: &'static str, tz: &'static str, window: (&'static str, &'static str)| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, DateTime<Utc>>(
                "SELECT pushrelay.after_quiet_hours($1, $2, $3::time, $4::time)",
            )
            .bind(t(at))
            .bind(tz)
            .bind(window.0)
            .bind(window.1)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let night = ("21:00", "08:00");
    for (at, tz, window, want) in [
        // 13:00 in Berlin: not quiet.
        (
            "2027-01-15T12:00:00Z",
            "Europe/Berlin",
            night,
            "2027-01-15T12:00:00Z",
        ),
        // 22:30: until 08:00 the next morning.
        (
            "2027-01-15T21:30:00Z",
            "Europe/Berlin",
            night,
            "2027-01-16T07:00:00Z",
        ),
        // 07:00: until 08:00 the same morning.
        (
            "2027-01-15T06:00:00Z",
            "Europe/Berlin",
            night,
            "2027-01-15T07:00:00Z",
        ),
        // The window's start is quiet, its end is not.
        (
            "2027-01-15T20:00:00Z",
            "Europe/Berlin",
            night,
            "2027-01-16T07:00:00Z",
        ),
        (
            "2027-01-15T07:00:00Z",
            "Europe/Berlin",
            night,
            "2027-01-15T07:00:00Z",
        ),
        // 22:00 EST the night the clocks go forward: 08:00 EDT.
        (
            "2027-03-14T03:00:00Z",
            "America/New_York",
            night,
            "2027-03-14T12:00:00Z",
        ),
        // 01:00 NZDT in Auckland.
        (
            "2027-01-15T12:00:00Z",
            "Pacific/Auckland",
            night,
            "2027-01-15T19:00:00Z",
        ),
        // A window inside one day: 13:30 in Berlin, quiet 13:00-15:00.
        (
            "2027-01-15T12:30:00Z",
            "Europe/Berlin",
            ("13:00", "15:00"),
            "2027-01-15T14:00:00Z",
        ),
        (
            "2027-01-15T14:00:00Z",
            "Europe/Berlin",
            ("13:00", "15:00"),
            "2027-01-15T14:00:00Z",
        ),
    ] {
        assert_eq!(
            quiet(at, tz, window).await,
            t(want),
            "{at} in {tz}, quiet {window:?}"
        );
    }

    let order = |a: &'static str, b: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i32>(
                "SELECT CASE WHEN pushrelay.version_key($1) < pushrelay.version_key($2) THEN -1
                             WHEN pushrelay.version_key($1) > pushrelay.version_key($2) THEN 1
                             ELSE 0 END",
            )
            .bind(a)
            .bind(b)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    for (a, b, want) in [
        ("5.10", "5.9", 1),
        ("5.10.0", "5.10", 0),
        ("5.10.0-beta", "5.10", 0),
        ("5", "5.0.0", 0),
        ("10.0", "9.99", 1),
        ("5.1", "5.01", 0),
        ("5.10.1", "5.10", 1),
    ] {
        assert_eq!(order(a, b).await, want, "{a} vs {b}");
    }
    // A device that never reported its version is in no range.
    let null: bool = sqlx::query_scalar("SELECT pushrelay.version_key(NULL) IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(null);
}

#[sqlx::test(migrations = false)]
async fn a_pause_while_the_daemon_sends_stops_it_within_one_fan_out_batch(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    common::seed_users(&pool, 500).await;
    // 50 ms a send: seconds for 1000 devices.
    let mut s = slow_bulk(50, 20);
    s.campaigns.batch = 100;
    s.campaigns.backlog = 100;
    let ctx = context(&s);
    let (c, _) = create(
        &pool,
        &ctx,
        &new_campaign(segment(json!({"all": true}))),
        Utc::now(),
    )
    .await;
    let daemon = start(&pool, s);
    let delivered = format!(
        "SELECT count(*) FROM pushrelay.deliveries WHERE campaign_id = '{}' AND state = 'delivered'",
        c.id
    );
    wait_for(&pool, &format!("SELECT least(({delivered}), 100)"), 100).await;
    campaigns::pause(&pool, c.id, None).await.unwrap();
    let notifications = "SELECT count(*) FROM pushrelay.notifications WHERE campaign_id = $1";
    let deliveries = "SELECT count(*) FROM pushrelay.deliveries WHERE campaign_id = $1";
    let (n0, d0) = (
        scalar(&pool, notifications, c.id).await,
        scalar(&pool, deliveries, c.id).await,
    );
    wait_for(&pool, OPEN, 0).await;
    // No notification was created after the pause, and what was sent
    // after it is at most the fan-out batch in hand (two devices a user).
    assert_eq!(scalar(&pool, notifications, c.id).await, n0);
    let d1 = scalar(&pool, deliveries, c.id).await;
    assert!(d1 - d0 <= 40, "{} sent after the pause", d1 - d0);
    assert!(d1 < 1000, "the pause came after the whole campaign");
    let pending = targets(&pool, c.id, &["pending"]).await.len() as i64;
    assert_eq!(pending, 1000 - d1);

    campaigns::resume(&pool, c.id, None).await.unwrap();
    wait_for(&pool, &delivered, 1000).await;
    wait_for(&pool, OPEN, 0).await;
    stop(daemon).await;
    let (all, devices): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT device_id) FROM pushrelay.deliveries WHERE campaign_id = $1",
    )
    .bind(c.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((all, devices), (1000, 1000));
}

#[sqlx::test(migrations = false)]
async fn a_local_time_inside_quiet_hours_waits_for_their_end_in_each_timezone(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = common::pool(&opts).await;
    let settings = settings_with_quiet_hours("21:00-08:00");
    let ctx = context(&settings);
    let l = limits(&settings);
    let mut zone: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (i, tz) in ["Pacific/Auckland", "Europe/Berlin", "America/New_York"]
        .into_iter()
        .cycle()
        .take(90)
        .enumerate()
    {
        let id = add(
            &pool,
            Dev {
                timezone: tz,
                ..dev(&format!("u{i}"), "android")
            },
        )
        .await;
        zone.entry(tz).or_default().push(id);
    }
    let local = |time: &str, ttl: i64| NewCampaign {
        schedule: Schedule {
            local_time: Some(time.into()),
            date: Some("2027-01-15".parse().unwrap()),
            ..Schedule::default()
        },
        ttl_seconds: Some(ttl),
        ..new_campaign(segment(json!({"all": true})))
    };
    let created = t("2027-01-14T00:00:00Z");
    // 07:00 local, 2 h to live: each device at its own 08:00.
    let (seven, _) = create(&pool, &ctx, &local("07:00", 7200), created).await;
    // 06:00 local, 1 h to live: quiet until 08:00, past the TTL everywhere.
    let (six, _) = create(&pool, &ctx, &local("06:00", 3600), created).await;

    let mut queued = Vec::new();
    for (now, tz) in [
        // 08:00 in Auckland (UTC+13), Berlin (UTC+1), New York (UTC−5).
        ("2027-01-14T19:00:00Z", "Pacific/Auckland"),
        ("2027-01-15T07:00:00Z", "Europe/Berlin"),
        ("2027-01-15T13:00:00Z", "America/New_York"),
    ] {
        let before = t(now) - Duration::seconds(1);
        pump_all(&pool, &ctx, l, before).await;
        assert_eq!(
            targets(&pool, seven.id, &["queued"]).await,
            sorted(queued.clone()),
            "at {before}"
        );
        pump_all(&pool, &ctx, l, t(now)).await;
        queued.extend(zone[tz].iter().copied());
        assert_eq!(
            targets(&pool, seven.id, &["queued"]).await,
            sorted(queued.clone()),
            "at {now}"
        );
    }
    let c = campaigns::get(&pool, seven.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.state, CampaignState::Completed);

    assert_eq!(targets(&pool, six.id, &["expired"]).await.len(), 90);
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM pushrelay.notifications WHERE campaign_id = $1",
            six.id
        )
        .await,
        0
    );
    let c = campaigns::get(&pool, six.id, None).await.unwrap().unwrap();
    assert_eq!(c.state, CampaignState::Completed);
}

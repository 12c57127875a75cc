//! `pushrelay demo`: a guided tour in one command.
//!
//! Against the configured database (created if missing) it migrates,
//! registers sample devices for the `demo` app, enqueues sample alerts — one
//! to a dead token, one already expired, one scheduled, one flaky, one
//! rate-limited, one with an unknown template — runs the daemon until
//! everything settles, and prints what support would see. Sends go through
//! the real APNs and FCM clients to mock servers started in-process (with the
//! fault script of `[mock.faults]`), or with `--simulator` to the in-process
//! simulator (`[simulator.rules]`). Earlier demo data (app `demo` only) is
//! deleted first.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use uuid::Uuid;

use super::status::render_table;
use crate::app::App;
use crate::config::Settings;
use crate::model::{Environment, Platform, Priority};
use crate::store::devices::{self, NewDevice};
use crate::store::notifications::{self as outbox, NewNotification};
use crate::store::{self as db, status};
use crate::telemetry;

const APP: &str = "demo";

pub async fn run(mut settings: Settings, simulator: bool) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_none() {
        settings.telemetry.level = "warn".into();
    }
    telemetry::init(&settings.telemetry);
    anyhow::ensure!(
        settings.apps.contains_key(APP),
        "the demo needs an app named {APP:?} in the configuration (see config.toml)"
    );
    let started = Instant::now();
    let mock = if simulator {
        None
    } else {
        Some(mock::start(&mut settings).await?)
    };
    db::create_database_if_missing(&settings.database.url).await?;
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool).await?;
    println!(
        "database {} ready",
        db::describe(&db::connect_options(&settings.database.url)?)
    );

    db::history::forget_app(&pool, APP).await?;

    let device =
        |user: &'static str, platform, token: &'static str, locale: &'static str| NewDevice {
            app: APP,
            user_id: user,
            platform,
            token,
            environment: Environment::Production,
            locale,
            timezone: "Europe/Lisbon",
        };
    // Token prefixes pick the provider's behaviour (see [mock.faults] and
    // [simulator.rules] in config.toml): dead… is unregistered, fa11…
    // fails twice, ca11… is rate limited once.
    for d in [
        device(
            "alice",
            Platform::Ios,
            "a11ce0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d",
            "en-GB",
        ),
        device(
            "alice",
            Platform::Android,
            "alice-pixel:APA91bF3x9demoToken",
            "en-GB",
        ),
        device(
            "bruno",
            Platform::Ios,
            "b5a40f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6",
            "pt-BR",
        ),
        device(
            "carol",
            Platform::Ios,
            "dead0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6",
            "de-AT",
        ),
        device(
            "carol",
            Platform::Android,
            "fa11-carol:APA91bG7demoToken",
            "de-AT",
        ),
        device(
            "dave",
            Platform::Ios,
            "ca11d4fe0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4",
            "en-US",
        ),
    ] {
        devices::register(&pool, &d)
            .await
            .context("registering demo devices")?;
    }
    println!("registered 6 devices for 4 users (carol's iPhone token is dead)");

    let templated = |user: &str, template: &str, data: serde_json::Value| NewNotification {
        app: APP.into(),
        user_id: Some(user.into()),
        template: Some(template.into()),
        data,
        ..Default::default()
    };
    let transfer = json!({"amount": "250.00", "currency": "EUR", "sender": "ACME Payroll"});
    let code = json!({"code": "493 817", "minutes": 5});
    let mut sent: Vec<(&str, NewNotification)> = vec![
        (
            "transfer alert, alice's iPhone and Android",
            templated("alice", "transfer_received", transfer.clone()),
        ),
        (
            "transfer alert in Portuguese (pt-BR → pt)",
            templated("bruno", "transfer_received", transfer.clone()),
        ),
        (
            "one-time code: dead iPhone token, flaky Android",
            NewNotification {
                ttl_seconds: Some(300),
                ..templated("carol", "one_time_code", code.clone())
            },
        ),
        (
            "one-time code, provider rate-limits once",
            NewNotification {
                ttl_seconds: Some(300),
                ..templated("dave", "one_time_code", code.clone())
            },
        ),
        (
            "one-time code that expired before it could go",
            NewNotification {
                ttl_seconds: Some(60),
                send_at: Some(chrono::Utc::now() - chrono::Duration::minutes(10)),
                ..templated("alice", "one_time_code", code.clone())
            },
        ),
        (
            "weekly digest, bulk, scheduled 3 s ahead",
            NewNotification {
                priority: Some(Priority::Bulk),
                send_at: Some(chrono::Utc::now() + chrono::Duration::seconds(3)),
                ..templated(
                    "bruno",
                    "weekly_digest",
                    json!({"name": "Bruno", "count": 3}),
                )
            },
        ),
        (
            "unknown template (a producer bug)",
            templated("dave", "no_such_template", json!({})),
        ),
        (
            "inline message, no template",
            NewNotification {
                title: Some("Maintenance tonight".into()),
                body: Some("The app will be unavailable 02:00–02:30 UTC.".into()),
                data: json!({"kind": "maintenance"}),
                template: None,
                ..templated("alice", "", json!({}))
            },
        ),
    ];
    let mut ids: Vec<(&str, Uuid)> = Vec::new();
    for (what, n) in sent.drain(..) {
        ids.push((what, outbox::enqueue(&pool, &n).await?));
    }
    println!(
        "enqueued {} notifications; running the daemon until they settle…\n",
        ids.len()
    );

    let daemon = App::with_pool(settings, pool.clone())?.spawn();
    let providers = daemon.providers.clone();

    let deadline = Duration::from_secs(25);
    status::wait_until_settled(&pool, APP, deadline.saturating_sub(started.elapsed())).await?;
    // Carol's iPhone is now invalidated: her next notification skips it.
    let followup =
        outbox::enqueue(&pool, &templated("carol", "transfer_received", transfer)).await?;
    ids.push(("next alert to carol: the dead iPhone is skipped", followup));
    status::wait_until_settled(&pool, APP, deadline.saturating_sub(started.elapsed())).await?;
    daemon.shutdown().await?;

    for (what, id) in &ids {
        println!("── {what}");
        print!("{}", render_table(&status::load(&pool, *id).await?));
        println!();
    }
    let counts = status::deliveries_by_state(&pool, APP).await?;
    let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{s}={n}")).collect();
    if let Some(mock) = mock {
        mock::report(mock, &providers);
    }
    println!(
        "demo finished in {:.1} s: deliveries {}. Inspect any of them with `pushrelay status <id>`.",
        started.elapsed().as_secs_f64(),
        summary.join(" ")
    );
    Ok(())
}

/// The mock servers the demo sends to, when they are built in.
#[cfg(feature = "mock")]
mod mock {
    use crate::config::{ProviderSettings, Settings};
    use crate::mock::{MockConfig, MockProviders};
    use crate::mock_setup::write_credentials;
    use crate::providers::Providers;

    /// Starts the mock servers and points the demo app at them.
    pub async fn start(settings: &mut Settings) -> anyhow::Result<MockProviders> {
        let mock = MockProviders::start(MockConfig {
            faults: settings.mock.faults.clone(),
            ..Default::default()
        })
        .await?;
        let dir = std::env::temp_dir().join(format!("pushrelay-demo-{}", std::process::id()));
        let routes = write_credentials(&mock, &dir)?;
        let app = settings.apps.get_mut(super::APP).expect("checked above");
        app.ios = Some(ProviderSettings::Apns(routes.apns));
        app.android = Some(ProviderSettings::Fcm(routes.fcm));
        println!(
            "mock APNs and FCM servers at {} (HTTP/2 over TLS); credentials in {}",
            mock.base_url(),
            dir.display()
        );
        Ok(mock)
    }

    pub fn report(mock: MockProviders, providers: &Providers) {
        let stats = mock.stats();
        println!(
            "mock providers: {} requests over {} connections, {} accepted; \
             APNs provider tokens signed: {}, FCM access tokens fetched: {}",
            stats.requests,
            stats.connections,
            stats.accepted,
            providers.apns_signatures(),
            providers.fcm_token_fetches()
        );
        mock.shutdown();
    }
}

/// Without the mock servers built in, the demo uses the simulator.
#[cfg(not(feature = "mock"))]
mod mock {
    use crate::config::Settings;
    use crate::providers::Providers;

    pub enum Never {}

    pub async fn start(_: &mut Settings) -> anyhow::Result<Never> {
        anyhow::bail!(
            "this build has no mock providers (built without the `mock` feature); run `pushrelay demo --simulator`"
        )
    }

    pub fn report(never: Never, _: &Providers) {
        match never {}
    }
}

//! A device receipt counted where operators read it: the API's own
//! `/metrics`, scraped over HTTP. A test binary of its own, so the
//! process-wide Prometheus recorder sees no other test's receipts.

mod common;

use common::api::{key, samples, spawn};
use common::*;
use pushrelay::model::Platform;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrations = false)]
async fn a_receipt_is_counted_once_in_metrics(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let scrape = || async {
        let r = api.client.get(api.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    };
    // The first scrape installs the recorder; nothing is counted yet.
    let opened = [r#"app="bank""#, r#"event="opened""#];
    let counted = |body: String| samples(&body, "pushrelay_device_receipts_total", &opened);
    assert_eq!(counted(scrape().await), Vec::<f64>::new());

    let device = add_device(&pool, "ines", Platform::Ios, &ios_token("b2", 1)).await;
    let daemon = start(&pool, settings());
    let id = pushrelay::store::notifications::enqueue(
        &pool,
        &pushrelay::store::notifications::NewNotification {
            app: APP.into(),
            user_id: Some("ines".into()),
            body: Some("hello".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    wait_for(&pool, DELIVERED, 1).await;
    stop(daemon).await;

    let k = key(&pool, &["devices"], None).await;
    let report = json!({"notification_id": id, "device_id": device, "event": "opened"});
    for want in [StatusCode::CREATED, StatusCode::OK] {
        let (status, body) = api
            .call(&k, Method::POST, "/v1/receipts", Some(&report), &[])
            .await;
        assert_eq!(status, want, "{body}");
        assert_eq!(
            counted(scrape().await),
            vec![1.0],
            "counted once, however often it is reported"
        );
    }
}

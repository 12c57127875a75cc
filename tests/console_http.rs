//! The support console over plain HTTP (no browser, redirects not
//! followed) against the test's own database: every page sends a visitor
//! without a valid session to sign-in, user-controlled text is escaped,
//! the security headers are on every answer, the session cookie carries
//! its attributes, and sign-in refuses foreign origins, open redirects,
//! wrong keys and keys without the read scope; signing out or revoking the
//! key ends the session.

mod common;

use common::api::{key, spawn};
use common::console::*;
use common::*;
use pushrelay::model::Platform;
use reqwest::header::SET_COOKIE;
use reqwest::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";
const SCRIPT: &str = "<script>alert(1)</script>";

/// A 303 to the sign-in page that brings the visitor back to `path`.
fn assert_sent_to_sign_in(res: &Answer, path: &str) {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}: {}", res.body);
    let location = reqwest::Url::parse("http://console.test")
        .unwrap()
        .join(res.location())
        .unwrap();
    assert_eq!(location.path(), "/console/sign-in", "{path}");
    let next: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert_eq!(next, [("next".to_owned(), path.to_owned())], "{path}");
}

/// `s` as a query parameter's value.
fn form_urlencode(s: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", &[("n", s)])
        .unwrap()
        .query()
        .unwrap()
        .trim_start_matches("n=")
        .to_owned()
}

fn assert_security_headers(res: &Answer, what: &str) {
    assert_eq!(res.header("content-security-policy"), CSP, "{what}");
    assert_eq!(res.header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(res.header("x-frame-options"), "DENY", "{what}");
    assert_eq!(res.header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(res.header("cache-control"), "no-store", "{what}");
}

const PAGES: [&str; 4] = [
    "/console/overview",
    "/console/search?q=x",
    "/console/users/u1",
    "/console/notifications/0190f3c4-8a6e-7cc1-9a43-0d1f3b3c2e11",
];

#[sqlx::test(migrations = false)]
async fn every_page_sends_a_visitor_without_a_session_to_sign_in(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let read = key(&pool, &["read"], None).await;
    // The console's root is the overview.
    let res = get(&api, "/console/", None).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/console/overview");
    for path in PAGES {
        let res = get(&api, path, None).await;
        assert_sent_to_sign_in(&res, path);
        assert_security_headers(&res, path);
        // A made-up session secret, and the API key itself in the cookie,
        // are no sessions.
        for cookie in [
            "pushrelay_console=Zm9vYmFyYmF6".to_owned(),
            format!("pushrelay_console={read}"),
        ] {
            let res = get(&api, path, Some(&cookie)).await;
            assert_sent_to_sign_in(&res, path);
        }
    }
    let res = get(&api, "/console/", Some("pushrelay_console=Zm9vYmFyYmF6")).await;
    assert_eq!(res.location(), "/console/overview");
    // The sign-in page itself is open, and a signed-in visitor gets the
    // page asked for.
    let res = get(&api, "/console/sign-in", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let cookie = sign_in(&api, &read).await;
    let res = get(&api, "/console/overview", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let res = get(&api, "/console/", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), "/console/overview");
}

#[sqlx::test(migrations = false)]
async fn user_controlled_text_is_escaped(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    // Two devices whose tokens end alike, so a search for that ending
    // lists both instead of jumping to one.
    add_device(
        &pool,
        SCRIPT,
        Platform::Android,
        "fcm-token-of-the-script-user-c0ffee",
    )
    .await;
    add_device(
        &pool,
        "u2",
        Platform::Android,
        "fcm-token-of-another-user-c0ffee",
    )
    .await;
    let admin = key(&pool, &["send", "read"], None).await;
    let (status, created) = api
        .call(
            &admin,
            reqwest::Method::POST,
            "/v1/notifications",
            Some(&serde_json::json!({"app": APP, "user_id": SCRIPT, "title": SCRIPT, "body": SCRIPT, "idempotency_key": SCRIPT})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let cookie = sign_in(&api, &admin).await;

    let user_page = format!("/console/users/{}", path_segment(SCRIPT));
    let notification_page = format!("/console/notifications/{id}");
    let list = "/console/search?q=c0ffee".to_owned();
    for path in [&user_page, &notification_page, &list] {
        let res = get(&api, path, Some(&cookie)).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
        assert!(
            res.body.contains("&lt;script&gt;"),
            "{path} does not show the user id escaped:\n{}",
            res.body
        );
        assert!(
            !res.body.contains("<script"),
            "{path} has a raw <script:\n{}",
            res.body
        );
    }

    // The user id is also the notification's idempotency key: the search
    // lists both, escaped.
    let res = get(
        &api,
        &format!("/console/search?q={}", form_urlencode(SCRIPT)),
        Some(&cookie),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(res.body.contains("id=\"users\""), "{}", res.body);
    assert!(
        res.body.contains("id=\"found-notifications\""),
        "{}",
        res.body
    );
    assert!(
        res.body.contains("<h1>Search for <code>&lt;script&gt;"),
        "{}",
        res.body
    );
    assert!(!res.body.contains("<script"), "{}", res.body);
    // And the user's page, through the address the list links to.
    let link = "href=\"/console/users/";
    let start = res.body.find(link).expect("a link to the user") + "href=\"".len();
    let href = &res.body[start..start + res.body[start..].find('"').unwrap()];
    assert!(!href.contains('<'), "{href}");
    let res = get(&api, href, Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "{href}: {}", res.body);
    assert!(
        res.body.contains("<h1>User <code>&lt;script&gt;"),
        "{}",
        res.body
    );
}

/// `s` percent-encoded as one path segment.
fn path_segment(s: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.path_segments_mut().unwrap().push(s);
    url.path().trim_start_matches('/').to_owned()
}

#[sqlx::test(migrations = false)]
async fn security_headers_on_sign_in_signed_in_and_missing_pages(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let read = key(&pool, &["read"], None).await;
    let res = get(&api, "/console/sign-in", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_security_headers(&res, "sign-in page");
    assert!(res.header("content-type").starts_with("text/html"));

    let cookie = sign_in(&api, &read).await;
    let res = get(&api, "/console/overview", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_security_headers(&res, "overview");

    for path in [
        "/console/no-such-page",
        "/console/notifications/0190f3c4-8a6e-7cc1-9a43-0d1f3b3c2e11",
    ] {
        let res = get(&api, path, Some(&cookie)).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}: {}", res.body);
        assert_security_headers(&res, path);
        assert!(
            res.header("content-type").starts_with("text/html"),
            "{path}"
        );
    }

    let res = get(&api, "/console/assets/console.css", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_security_headers(&res, "stylesheet");
    assert!(res.header("content-type").starts_with("text/css"));
}

#[sqlx::test(migrations = false)]
async fn the_session_cookie_is_http_only_strict_and_secure_behind_tls(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let read = key(&pool, &["read"], None).await;

    let res = sign_in_with(&api, &read, "/console/overview", &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let attrs = attributes(res.session_cookie());
    for want in ["httponly", "samesite=strict", "path=/console"] {
        assert!(
            attrs.contains(&want.to_owned()),
            "{want} missing: {attrs:?}"
        );
    }
    assert!(!attrs.contains(&"secure".to_owned()), "{attrs:?}");
    // The secret is not the API key.
    assert!(!res.session_cookie().contains(&read));

    let res = sign_in_with(
        &api,
        &read,
        "/console/overview",
        &[("X-Forwarded-Proto", "https")],
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let attrs = attributes(res.session_cookie());
    assert!(attrs.contains(&"secure".to_owned()), "{attrs:?}");
    assert!(attrs.contains(&"httponly".to_owned()), "{attrs:?}");
}

/// A `Set-Cookie`'s attributes, lower-cased, without the name=value.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase().replace(' ', ""))
        .collect()
}

#[sqlx::test(migrations = false)]
async fn sign_in_refuses_wrong_keys_foreign_origins_and_open_redirects(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let api = spawn(&pool, settings()).await;
    let read = key(&pool, &["read"], None).await;
    let send_only = key(&pool, &["send"], None).await;

    let res = sign_in_with(&api, "pr_not_a_key", "/console/overview", &[]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(
        res.body.contains("That API key is not valid"),
        "{}",
        res.body
    );
    assert!(res.headers.get(SET_COOKIE).is_none());
    assert_security_headers(&res, "refused sign-in");

    let res = sign_in_with(&api, &send_only, "/console/overview", &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.body.contains("read"), "{}", res.body);
    assert!(res.headers.get(SET_COOKIE).is_none());

    // A form posted from another site: refused, no session made.
    let res = sign_in_with(
        &api,
        &read,
        "/console/overview",
        &[("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.headers.get(SET_COOKIE).is_none());
    let sessions = count(&pool, "SELECT count(*) FROM pushrelay.console_sessions").await;
    assert_eq!(sessions, 0);
    // So is one the browser itself marks cross-site, or an opaque origin
    // the browser does not vouch for.
    for headers in [
        [
            ("Origin", api.base.as_str()),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        [("Origin", "null"), ("Sec-Fetch-Site", "cross-site")],
        [("Origin", "null"), ("Sec-Fetch-Site", "same-site")],
    ] {
        let res = sign_in_with(&api, &read, "/console/overview", &headers).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{headers:?}");
    }
    let res = sign_in_with(&api, &read, "/console/overview", &[("Origin", "null")]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let sessions = count(&pool, "SELECT count(*) FROM pushrelay.console_sessions").await;
    assert_eq!(sessions, 0);
    // The console's own origin is fine; so is what Chromium sends from
    // the console's own form under `Referrer-Policy: no-referrer`.
    for headers in [
        [
            ("Origin", api.base.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        [("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
    ] {
        let res = sign_in_with(&api, &read, "/console/overview", &headers).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "{headers:?}: {}",
            res.body
        );
    }

    // `next` only ever leads to a console page.
    for next in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "/v1/notifications",
        "javascript:alert(1)",
    ] {
        let res = sign_in_with(&api, &read, next, &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{next}: {}", res.body);
        let location = res.location();
        assert!(
            location.starts_with("/console/") && !location.starts_with("/console//"),
            "next={next} led to {location}"
        );
    }
    let res = sign_in_with(&api, &read, "/console/users/u7?cursor=abc", &[]).await;
    assert_eq!(res.location(), "/console/users/u7?cursor=abc");
}

#[sqlx::test(migrations = false)]
async fn signing_out_or_revoking_the_key_ends_the_session(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = pool(&opts).await;
    let mut s = settings();
    // Revocation is then seen by the very next request.
    s.api.key_cache_secs = 0;
    let api = spawn(&pool, s).await;
    let read = key(&pool, &["read"], None).await;

    let cookie = sign_in(&api, &read).await;
    assert_eq!(
        get(&api, "/console/overview", Some(&cookie)).await.status,
        StatusCode::OK
    );
    let res = answer(
        client()
            .post(api.url("/console/sign-out"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.location(), "/console/sign-in");
    let cleared = res.session_cookie();
    assert!(
        cookie_pair(cleared) == "pushrelay_console="
            || cleared.to_ascii_lowercase().contains("max-age=0"),
        "the cookie is not cleared: {cleared}"
    );
    // The old cookie, replayed, is no session any more.
    assert_sent_to_sign_in(
        &get(&api, "/console/overview", Some(&cookie)).await,
        "/console/overview",
    );
    let sessions = count(&pool, "SELECT count(*) FROM pushrelay.console_sessions").await;
    assert_eq!(sessions, 0);

    // A key revoked while signed in: its session stops working.
    let cookie = sign_in(&api, &read).await;
    assert_eq!(
        get(&api, "/console/overview", Some(&cookie)).await.status,
        StatusCode::OK
    );
    let id: i64 = sqlx::query_scalar("SELECT id FROM pushrelay.api_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    pushrelay::store::api_keys::revoke(&pool, &id.to_string())
        .await
        .unwrap();
    assert_sent_to_sign_in(
        &get(&api, "/console/overview", Some(&cookie)).await,
        "/console/overview",
    );
    // And it cannot sign in again.
    let res = sign_in_with(&api, &read, "/console/overview", &[]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

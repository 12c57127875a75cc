//! The mock providers validate requests like Apple and Google do, over real
//! HTTP/2 + TLS. (The pipeline tests in providers.rs drive them through the
//! real clients; these send hand-made requests to check the refusals.)

use pushrelay::mock::{ApnsKey, Fault, Faults, MockConfig, MockProviders, Rule};
use serde_json::{json, Value};

fn client(mock: &MockProviders) -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(mock.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap()
}

fn provider_jwt(key: &ApnsKey, iat: i64) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key.key_id.clone());
    let key_der = jsonwebtoken::EncodingKey::from_ec_pem(key.p8_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &json!({"iss": key.team_id, "iat": iat}), &key_der).unwrap()
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

async fn apns(
    mock: &MockProviders,
    token: &str,
    jwt: Option<&str>,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, Value) {
    let mut req = client(mock)
        .post(format!("{}/3/device/{token}", mock.base_url()))
        .body(body);
    if let Some(j) = jwt {
        req = req.header("authorization", format!("bearer {j}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn apns_refuses_what_apple_refuses() {
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    let good = provider_jwt(mock.apns_key(), now);
    let topic = MockConfig::default().apns_topic;
    let ok_headers = [("apns-topic", topic.as_str()), ("apns-push-type", "alert")];
    let payload = || json!({"aps": {"alert": "hi"}}).to_string();

    let wrong_key = provider_jwt(&mock.other_apns_key(), now);
    let old = provider_jwt(mock.apns_key(), now - 7200);
    let big = json!({"aps": {"alert": "x".repeat(4100)}}).to_string();
    let with = |extra: (&'static str, &'static str)| vec![ok_headers[0], ok_headers[1], extra];
    let wrong_topic = vec![("apns-topic", "com.other.app"), ("apns-push-type", "alert")];
    let bad_type = vec![ok_headers[0], ("apns-push-type", "banner")];
    let no_topic = vec![("apns-push-type", "alert")];
    // (token, JWT, headers, body, expected status, expected reason)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Vec<(&'a str, &'a str)>,
        String,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            TOKEN,
            None,
            ok_headers.to_vec(),
            payload(),
            403,
            "MissingProviderToken",
        ),
        (
            TOKEN,
            Some(&wrong_key),
            ok_headers.to_vec(),
            payload(),
            403,
            "InvalidProviderToken",
        ),
        (
            TOKEN,
            Some(&old),
            ok_headers.to_vec(),
            payload(),
            403,
            "ExpiredProviderToken",
        ),
        (
            "not-hex",
            Some(&good),
            ok_headers.to_vec(),
            payload(),
            400,
            "BadDeviceToken",
        ),
        (TOKEN, Some(&good), no_topic, payload(), 400, "MissingTopic"),
        (
            TOKEN,
            Some(&good),
            wrong_topic,
            payload(),
            400,
            // Another app's bundle id, as Apple answers it.
            "DeviceTokenNotForTopic",
        ),
        (
            TOKEN,
            Some(&good),
            // This app's bundle id without the suffix VoIP needs.
            vec![ok_headers[0], ("apns-push-type", "voip")],
            payload(),
            400,
            "TopicDisallowed",
        ),
        (
            TOKEN,
            Some(&good),
            vec![
                ok_headers[0],
                ("apns-push-type", "background"),
                ("apns-priority", "10"),
            ],
            json!({"aps": {"content-available": 1}}).to_string(),
            400,
            "BadPriority",
        ),
        (
            TOKEN,
            Some(&good),
            vec![
                ok_headers[0],
                ("apns-push-type", "background"),
                ("apns-priority", "5"),
            ],
            payload(),
            400,
            "BadPayload",
        ),
        (
            TOKEN,
            Some(&good),
            with(("apns-expiration", "-1")),
            payload(),
            400,
            "BadExpirationDate",
        ),
        (
            TOKEN,
            Some(&good),
            with(("apns-expiration", "99999999999")),
            payload(),
            400,
            "BadExpirationDate",
        ),
        (
            TOKEN,
            Some(&good),
            bad_type,
            payload(),
            400,
            "InvalidPushType",
        ),
        (
            TOKEN,
            Some(&good),
            with(("apns-priority", "7")),
            payload(),
            400,
            "BadPriority",
        ),
        (
            TOKEN,
            Some(&good),
            with(("apns-id", "nope")),
            payload(),
            400,
            "BadMessageId",
        ),
        (
            TOKEN,
            Some(&good),
            with(("apns-expiration", "soon")),
            payload(),
            400,
            "BadExpirationDate",
        ),
        (
            TOKEN,
            Some(&good),
            ok_headers.to_vec(),
            String::new(),
            400,
            "PayloadEmpty",
        ),
        (
            TOKEN,
            Some(&good),
            ok_headers.to_vec(),
            big,
            413,
            "PayloadTooLarge",
        ),
    ];
    for (token, jwt, headers, body, status, reason) in cases {
        let (got, answer) = apns(&mock, token, jwt, &headers, body).await;
        assert_eq!(
            (got, answer["reason"].as_str()),
            (status, Some(reason)),
            "{headers:?}"
        );
    }
    assert_eq!(mock.stats().accepted, 0);

    let (status, _) = apns(&mock, TOKEN, Some(&good), &ok_headers, payload()).await;
    assert_eq!(status, 200);
    let stats = mock.stats();
    // The good token and the expired one carry valid signatures.
    assert_eq!((stats.accepted, stats.distinct_provider_jwts), (1, 2));
    assert_eq!(mock.received()[0].body, json!({"aps": {"alert": "hi"}}));

    // Scripted: 410 carries the timestamp since when the token is invalid.
    mock.set_faults(Faults {
        rules: vec![Rule {
            token_prefix: "0123".into(),
            fault: Fault::Unregistered,
            times: Some(1),
        }],
        ..Default::default()
    });
    let (status, body) = apns(&mock, TOKEN, Some(&good), &ok_headers, payload()).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (410, Some("Unregistered"))
    );
    assert!(body["timestamp"].as_i64().unwrap() > now * 1000 - 60_000);
    assert_eq!(
        apns(&mock, TOKEN, Some(&good), &ok_headers, payload())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn fcm_refuses_what_google_refuses() {
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let sa: Value = serde_json::from_str(&mock.service_account_json()).unwrap();
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(sa["private_key"].as_str().unwrap().as_bytes())
            .unwrap();
    let token_uri = sa["token_uri"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let assertion = |aud: &str| {
        let claims = json!({"iss": sa["client_email"], "scope": "https://www.googleapis.com/auth/firebase.messaging",
                            "aud": aud, "iat": now, "exp": now + 3600});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .unwrap()
    };
    let http = client(&mock);
    let exchange = |jwt: String| {
        http.post(token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &jwt),
            ])
            .send()
    };
    let resp = exchange(assertion("https://elsewhere/token"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let resp: Value = exchange(assertion(token_uri))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["token_type"], "Bearer");
    assert_eq!(resp["expires_in"], 3599);
    let access = resp["access_token"].as_str().unwrap().to_owned();
    assert_eq!(mock.stats().oauth_token_requests, 1);

    let send = |project: &str, bearer: &str, body: Value| {
        http.post(format!(
            "{}/v1/projects/{project}/messages:send",
            mock.base_url()
        ))
        .header("authorization", format!("Bearer {bearer}"))
        .json(&body)
        .send()
    };
    let project = sa["project_id"].as_str().unwrap();
    let message = |extra: Value| {
        let mut m =
            json!({"token": "android-device-token", "notification": {"title": "t", "body": "b"}});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "message": m })
    };
    let error = |v: Value| {
        (
            v["error"]["code"].as_u64(),
            v["error"]["status"].as_str().map(str::to_owned),
            v["error"]["details"][0]["errorCode"]
                .as_str()
                .map(str::to_owned),
        )
    };

    let r: Value = send(project, "ya29.forged", message(json!({})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error(r), (Some(401), Some("UNAUTHENTICATED".into()), None));
    let r: Value = send("another-project", &access, message(json!({})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        error(r),
        (Some(403), Some("PERMISSION_DENIED".into()), None)
    );
    for bad in [
        json!({"priority": "high"}),       // not a message field
        json!({"data": {"n": 1}}),         // data values must be strings
        json!({"android": {"ttl": 3600}}), // ttl is a duration string
        json!({"android": {"priority": "urgent"}}),
        json!({"topic": "news"}),                // two targets
        json!({"notification": {"sound": "x"}}), // sound is Android's or APNs'
        json!({"android": {"notification": {"colour": "#ffffff"}}}),
        json!({"android": {"notification": {"color": "red"}}}),
        json!({"apns": {"payload": {"aps": {"badges": 1}}}}),
        json!({"fcm_options": {"label": "x"}}),
        json!({"data": {"big": "x".repeat(4093)}}), // 3 + 4093 bytes counted
    ] {
        let r: Value = send(project, &access, message(bad.clone()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            error(r.clone()),
            (
                Some(400),
                Some("INVALID_ARGUMENT".into()),
                Some("INVALID_ARGUMENT".into())
            ),
            "{bad}: {r}"
        );
    }
    // A reserved data key: INVALID_ARGUMENT with a google.rpc.BadRequest
    // detail naming the field.
    let r: Value = send(
        project,
        &access,
        message(json!({"data": {"n": "1", "google.x": "1"}})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let details = r["error"]["details"].as_array().unwrap();
    let bad_request = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap_or_else(|| panic!("{r}"));
    let violation = &bad_request["fieldViolations"][0];
    assert_eq!(violation["field"], "message.data[0].key", "{r}");
    assert!(
        violation["description"]
            .as_str()
            .unwrap()
            .contains("google.x"),
        "{r}"
    );
    let ok: Value = send(project, &access, message(json!({"data": {"n": "1"}, "android": {"ttl": "3600s", "priority": "high", "collapse_key": "k"}})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ok["name"]
        .as_str()
        .unwrap()
        .starts_with(&format!("projects/{project}/messages/")));

    mock.set_faults(Faults {
        rules: vec![Rule {
            token_prefix: "android-".into(),
            fault: Fault::Unregistered,
            times: None,
        }],
        ..Default::default()
    });
    let r: Value = send(project, &access, message(json!({})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        error(r),
        (
            Some(404),
            Some("NOT_FOUND".into()),
            Some("UNREGISTERED".into())
        )
    );
}

#[tokio::test]
async fn random_fault_rates_apply_to_every_token() {
    let mock = MockProviders::start(MockConfig::default()).await.unwrap();
    let good = provider_jwt(mock.apns_key(), chrono::Utc::now().timestamp());
    let topic = MockConfig::default().apns_topic;
    let send = || {
        client(&mock)
            .post(format!("{}/3/device/{TOKEN}", mock.base_url()))
            .header("authorization", format!("bearer {good}"))
            .header("apns-topic", &topic)
            .header("apns-push-type", "alert")
            .body(json!({"aps": {"alert": "hi"}}).to_string())
            .send()
    };
    mock.set_faults(Faults {
        unavailable_rate: 1.0,
        ..Default::default()
    });
    assert_eq!(send().await.unwrap().status(), 503);
    mock.set_faults(Faults {
        rate_limited_rate: 1.0,
        retry_after_secs: 7,
        ..Default::default()
    });
    let r = send().await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "7")
    );
    mock.set_faults(Faults {
        reset_rate: 1.0,
        ..Default::default()
    });
    assert!(send().await.is_err(), "a reset connection gives no answer");
    mock.set_faults(Faults {
        slow_rate: 1.0,
        slow_ms: 300,
        ..Default::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(send().await.unwrap().status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(mock.stats().accepted, 1);
}

/// Like APNs: a new connection advertises one concurrent stream until the
/// sender's provider token is accepted, then the real limit. Checked with a
/// bare HTTP/2 client, which reports the limit the server advertised.
#[tokio::test]
async fn one_stream_until_the_provider_token_is_accepted() {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    use std::sync::Arc;
    use std::time::Duration;

    let mock = MockProviders::start(MockConfig {
        max_concurrent_streams: 50,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(mock.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let addr = mock.base_url().trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (mut send, conn) = h2::client::handshake(stream).await.unwrap();
    let mut conn = Box::pin(conn);
    // Let the connection read the server's SETTINGS.
    let drive = Duration::from_millis(300);
    let _ = tokio::time::timeout(drive, conn.as_mut()).await;
    assert_eq!(conn.max_concurrent_send_streams(), 1);

    let jwt = provider_jwt(mock.apns_key(), chrono::Utc::now().timestamp());
    let request = hyper::Request::post(format!("https://{addr}/3/device/{TOKEN}"))
        .header("authorization", format!("bearer {jwt}"))
        .header("apns-topic", "com.example.pushrelay")
        .header("apns-push-type", "alert")
        .body(())
        .unwrap();
    send = send.ready().await.unwrap();
    let (response, mut body) = send.send_request(request, false).unwrap();
    body.send_data(
        bytes::Bytes::from_static(br#"{"aps":{"alert":"hi"}}"#),
        true,
    )
    .unwrap();
    let response = tokio::select! {
        r = response => r.unwrap(),
        r = conn.as_mut() => panic!("the connection ended first: {r:?}"),
    };
    assert_eq!(response.status(), 200);
    let _ = tokio::time::timeout(drive, conn.as_mut()).await;
    assert_eq!(conn.max_concurrent_send_streams(), 50);
}

/// Apple refuses a key's *new* token within 20 minutes, not the same token
/// arriving on several connections at once (what a daemon does when its
/// connections open together). A different token is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_on_many_connections_at_once_is_not_an_update() {
    let topic = MockConfig::default().apns_topic;
    let send = |c: &reqwest::Client, mock: &MockProviders, jwt: Option<&str>| {
        let mut req = c
            .post(format!("{}/3/device/{TOKEN}", mock.base_url()))
            .header("apns-topic", topic.as_str())
            .header("apns-push-type", "alert")
            .body(json!({"aps": {"alert": "hi"}}).to_string());
        if let Some(j) = jwt {
            req = req.header("authorization", format!("bearer {j}"));
        }
        req.send()
    };
    // A race: a few tries, each on a fresh mock (a fresh 20-minute window).
    for _ in 0..5 {
        let mock = MockProviders::start(MockConfig::default()).await.unwrap();
        // Open the connections first (a request without a token is
        // refused but keeps its connection), then one token on all at once.
        let clients: Vec<reqwest::Client> = (0..16).map(|_| client(&mock)).collect();
        for c in &clients {
            assert_eq!(send(c, &mock, None).await.unwrap().status(), 403);
        }
        let now = chrono::Utc::now().timestamp();
        let jwt = provider_jwt(mock.apns_key(), now);
        let sends = clients.iter().map(|c| send(c, &mock, Some(&jwt)));
        for answer in futures_util::future::join_all(sends).await {
            assert_eq!(answer.unwrap().status(), 200);
        }
        assert_eq!(mock.stats().token_updates_refused, 0);

        let newer = provider_jwt(mock.apns_key(), now + 1);
        let resp = send(&clients[0], &mock, Some(&newer)).await.unwrap();
        assert_eq!(resp.status(), 429);
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["reason"], "TooManyProviderTokenUpdates");
    }
}

//! Mock APNs and FCM servers for tests, the demo and the benchmark.
//!
//! Nobody can test against Apple or Google from here, so the mock has to
//! behave like them where it matters: one HTTP/2-over-TLS server (its own CA,
//! generated at start) that speaks both protocols, **validates** what it
//! receives — provider JWTs and client certificates, OAuth assertions and
//! bearer tokens, headers, token formats, message shape, payload sizes — and
//! answers with the documented status codes and error bodies. A fault script
//! adds per-token answers, 503s, 429s with `Retry-After`, slow answers and
//! dropped connections. It records what it accepted so tests can assert on
//! exactly what a device would have received.

mod apns;
mod conn;
mod fcm;
mod pki;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("mock providers cannot listen on {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("mock providers listen only on loopback, not {0}; use 127.0.0.1:<port> (their certificate names 127.0.0.1 and localhost)")]
    NotLoopback(SocketAddr),
    #[error("mock providers TLS setup failed: {0}")]
    Tls(String),
    #[error("mock providers could not generate keys: {0}")]
    Keys(String),
}

pub struct MockConfig {
    /// Bundle id accepted in `apns-topic` (with the suffix Apple gives each
    /// push type, e.g. `<topic>.voip`).
    pub apns_topic: String,
    pub fcm_project_id: String,
    /// SETTINGS_MAX_CONCURRENT_STREAMS the server advertises.
    pub max_concurrent_streams: u32,
    /// `expires_in` of the FCM access tokens it issues.
    pub oauth_expires_in_secs: u64,
    /// Provider JWTs older than this are answered ExpiredProviderToken.
    pub jwt_max_age_secs: u64,
    /// APNs device tokens starting with one of these are *sandbox* tokens,
    /// all others production tokens. Like Apple's two gateways, the mock
    /// answers `400 BadDeviceToken` to a token sent to the other
    /// environment's gateway ([`MockProviders::base_url`] is production,
    /// [`MockProviders::sandbox_url`] sandbox).
    pub apns_sandbox_token_prefixes: Vec<String>,
    /// A key's new provider JWT within this many seconds of its previous
    /// one is answered 429 TooManyProviderTokenUpdates (Apple: 20 minutes).
    pub token_update_window_secs: u64,
    /// The mock's clock runs this far ahead of the host's (negative:
    /// behind), to play a sender whose clock is off.
    pub clock_skew_secs: i64,
    /// FCM sends allowed per project per window; more are answered 429
    /// QUOTA_EXCEEDED with Retry-After until the window ends.
    pub fcm_quota: Option<Quota>,
    /// Keep every accepted request for [`MockProviders::received`]; a
    /// benchmark turns it off so the mock's memory stays flat.
    pub record: bool,
    /// Count the messages accepted twice for one device
    /// ([`MockStats::duplicates`]): a hash per accepted message, kept for
    /// the mock's lifetime.
    pub count_duplicates: bool,
    pub faults: Faults,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            apns_topic: "com.example.pushrelay".into(),
            fcm_project_id: "pushrelay-demo".into(),
            max_concurrent_streams: 1000,
            oauth_expires_in_secs: 3599,
            jwt_max_age_secs: 3600,
            apns_sandbox_token_prefixes: Vec::new(),
            token_update_window_secs: 20 * 60,
            clock_skew_secs: 0,
            fcm_quota: None,
            record: true,
            count_duplicates: true,
            faults: Faults::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Per-token scripted answers; the first matching prefix wins.
    pub rules: Vec<Rule>,
    /// Share of requests answered 503.
    pub unavailable_rate: f64,
    /// Share of requests answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limited_rate: f64,
    pub retry_after_secs: u64,
    /// Share of requests answered only after `slow_ms`.
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// Share of requests whose connection is dropped without an answer.
    pub reset_rate: f64,
    /// Share of requests whose stream is reset with REFUSED_STREAM
    /// (not processed; the client may re-send at once).
    pub refused_stream_rate: f64,
    /// Share of requests that are answered and then make the connection
    /// go away: GOAWAY naming the last stream received in full; the
    /// streams above it are not processed.
    pub goaway_rate: f64,
}

/// A per-project FCM quota: `limit` sends per `window_secs`.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    pub limit: u64,
    pub window_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub token_prefix: String,
    pub fault: Fault,
    /// Only the first `times` requests for each matching token.
    pub times: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// APNs 410 Unregistered (with a timestamp); FCM 404 UNREGISTERED.
    Unregistered,
    /// APNs 503 ServiceUnavailable; FCM 503 UNAVAILABLE.
    Unavailable,
    /// APNs 429 TooManyRequests; FCM 429 QUOTA_EXCEEDED; with Retry-After.
    RateLimited { retry_after_secs: u64 },
    /// Any APNs answer.
    Apns { status: u16, reason: String },
    /// 410 Unregistered with this timestamp (ms since the epoch).
    ApnsUnregisteredSince { timestamp_ms: i64 },
    /// Any FCM error.
    Fcm {
        status: u16,
        code: String,
        message: Option<String>,
    },
    /// Answer normally after `ms`.
    Slow { ms: u64 },
    /// Drop the connection without answering.
    Reset,
    /// Take the message (it is recorded: the device gets it), then drop
    /// the connection before answering: the ambiguous failure after which
    /// a retry reaches the device twice.
    AcceptThenReset,
    /// Reset the stream with REFUSED_STREAM.
    RefusedStream,
    /// Answer, then GOAWAY (see [`Faults::goaway_rate`]).
    GoAway,
}

pub struct ApnsKey {
    pub team_id: String,
    pub key_id: String,
    /// PKCS#8 PEM of an EC P-256 key, as in Apple's .p8 files.
    pub p8_pem: String,
}

pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Received {
    pub route: Route,
    pub token: String,
    pub headers: BTreeMap<String, String>,
    pub body: serde_json::Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Route {
    Apns,
    Fcm,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub connections: u64,
    pub requests: u64,
    pub accepted: u64,
    pub distinct_provider_jwts: u64,
    pub oauth_token_requests: u64,
    /// Accepted requests that repeat one already accepted (same route,
    /// token and content): what a device would show twice unless the
    /// sender's collapse id folds them.
    pub duplicates: u64,
    /// Provider JWTs answered TooManyProviderTokenUpdates.
    pub token_updates_refused: u64,
    pub refused_streams: u64,
    pub goaways: u64,
    /// FCM sends answered 429 QUOTA_EXCEEDED by the quota.
    pub quota_exceeded: u64,
    /// FCM sends per quota window, accepted or not, in window order.
    pub quota_windows: Vec<u64>,
}

/// Shared by the connection tasks.
pub(crate) struct State {
    topic: String,
    project: String,
    oauth_expires_in: Duration,
    jwt_max_age_secs: i64,
    token_update_window: Duration,
    clock_skew_secs: i64,
    fcm_quota: Option<Quota>,
    /// Sends per FCM quota window since the start.
    quota_windows: Mutex<Vec<u64>>,
    started: std::time::Instant,
    /// Per signing key: its current JWT and when it was first accepted.
    key_updated: Mutex<HashMap<String, (std::time::Instant, String)>>,
    token_updates_refused: AtomicU64,
    refused_streams: AtomicU64,
    goaways: AtomicU64,
    quota_exceeded: AtomicU64,
    record: bool,
    count_duplicates: bool,
    sandbox_prefixes: Vec<String>,
    faults: Mutex<Faults>,
    apns_key: ApnsKey,
    apns_public: jsonwebtoken::DecodingKey,
    sa_json: String,
    sa_email: String,
    sa_public: jsonwebtoken::DecodingKey,
    token_uri: String,
    /// Verified provider JWTs and their `iat`: each verified once.
    jwts: Mutex<HashMap<String, i64>>,
    /// Issued OAuth access tokens and when they expire.
    access_tokens: Mutex<HashMap<String, std::time::Instant>>,
    per_token: Mutex<HashMap<String, u64>>,
    /// A hash of each accepted (route, token, content), for `duplicates`.
    seen: Mutex<HashSet<u64>>,
    duplicates: AtomicU64,
    received: Mutex<Vec<Received>>,
    connections: AtomicU64,
    requests: AtomicU64,
    accepted: AtomicU64,
    oauth_requests: AtomicU64,
}

pub struct MockProviders {
    addr: SocketAddr,
    sandbox_addr: SocketAddr,
    ca_pem: String,
    client: ClientCert,
    state: Arc<State>,
    stop: CancellationToken,
}

type Answer = Response<Full<Bytes>>;

/// What the connection handler should do with a request.
pub(crate) enum Outcome {
    Answer(Answer),
    Reset,
    /// Reset the stream with REFUSED_STREAM: not processed.
    Refused,
    /// Answer, then make the connection go away.
    GoAway(Answer),
}

impl MockProviders {
    pub async fn start(config: MockConfig) -> Result<MockProviders, MockError> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn start_on(
        addr: SocketAddr,
        config: MockConfig,
    ) -> Result<MockProviders, MockError> {
        if !addr.ip().is_loopback() {
            return Err(MockError::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|cause| MockError::Bind { addr, cause })?;
        let addr = listener
            .local_addr()
            .map_err(|cause| MockError::Bind { addr, cause })?;
        let base = format!("https://{addr}");
        // APNs is two hosts: the sandbox gateway is a second listener of
        // the same server, told apart by the port the request names.
        let sandbox_listener = TcpListener::bind(SocketAddr::new(addr.ip(), 0))
            .await
            .map_err(|cause| MockError::Bind { addr, cause })?;
        let sandbox_addr = sandbox_listener
            .local_addr()
            .map_err(|cause| MockError::Bind { addr, cause })?;
        // RSA key generation takes a moment; keep it off the runtime.
        let (pki, (apns_key, apns_public), (sa_private, sa_public)) =
            tokio::task::spawn_blocking(|| -> Result<_, MockError> {
                Ok((
                    pki::generate()?,
                    pki::apns_key(&pki::apple_id(), &pki::apple_id())?,
                    pki::service_account_key()?,
                ))
            })
            .await
            .map_err(|e| MockError::Keys(e.to_string()))??;
        let token_uri = format!("{base}/token");
        let sa_email = format!(
            "pushrelay@{}.iam.gserviceaccount.com",
            config.fcm_project_id
        );
        let sa_json = serde_json::json!({
            "type": "service_account",
            "project_id": config.fcm_project_id,
            "private_key_id": uuid::Uuid::new_v4().simple().to_string(),
            "private_key": sa_private,
            "client_email": sa_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        })
        .to_string();
        let key_err = |e: jsonwebtoken::errors::Error| MockError::Keys(e.to_string());
        let state = Arc::new(State {
            topic: config.apns_topic,
            project: config.fcm_project_id,
            oauth_expires_in: Duration::from_secs(config.oauth_expires_in_secs),
            jwt_max_age_secs: config.jwt_max_age_secs as i64,
            token_update_window: Duration::from_secs(config.token_update_window_secs),
            clock_skew_secs: config.clock_skew_secs,
            fcm_quota: config.fcm_quota,
            quota_windows: Mutex::new(Vec::new()),
            started: std::time::Instant::now(),
            key_updated: Mutex::new(HashMap::new()),
            token_updates_refused: AtomicU64::new(0),
            refused_streams: AtomicU64::new(0),
            goaways: AtomicU64::new(0),
            quota_exceeded: AtomicU64::new(0),
            record: config.record,
            count_duplicates: config.count_duplicates,
            sandbox_prefixes: config.apns_sandbox_token_prefixes,
            faults: Mutex::new(config.faults),
            apns_public: jsonwebtoken::DecodingKey::from_ec_pem(apns_public.as_bytes())
                .map_err(key_err)?,
            apns_key,
            sa_json,
            sa_email,
            sa_public: jsonwebtoken::DecodingKey::from_rsa_pem(sa_public.as_bytes())
                .map_err(key_err)?,
            token_uri,
            jwts: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
            per_token: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashSet::new()),
            duplicates: AtomicU64::new(0),
            received: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            oauth_requests: AtomicU64::new(0),
        });
        let tls = tls_config(&pki)?;
        let stop = CancellationToken::new();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        for (l, sandbox) in [(listener, false), (sandbox_listener, true)] {
            tokio::spawn(accept_loop(
                l,
                sandbox,
                acceptor.clone(),
                state.clone(),
                config.max_concurrent_streams,
                stop.clone(),
            ));
        }
        Ok(MockProviders {
            addr,
            sandbox_addr,
            ca_pem: pki.ca_pem,
            client: pki.client,
            state,
            stop,
        })
    }

    /// The production APNs gateway, FCM and the OAuth token endpoint.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The sandbox APNs gateway (see
    /// [`MockConfig::apns_sandbox_token_prefixes`]).
    pub fn sandbox_url(&self) -> String {
        format!("https://{}", self.sandbox_addr)
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn apns_key(&self) -> &ApnsKey {
        &self.state.apns_key
    }

    /// Same team and key id, different private key: what a misconfigured
    /// sender would sign with.
    pub fn other_apns_key(&self) -> ApnsKey {
        let k = &self.state.apns_key;
        pki::apns_key(&k.team_id, &k.key_id)
            .expect("P-256 key generation does not fail")
            .0
    }

    pub fn client_cert(&self) -> &ClientCert {
        &self.client
    }

    pub fn service_account_json(&self) -> String {
        self.state.sa_json.clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn stats(&self) -> Stats {
        let s = &self.state;
        Stats {
            connections: s.connections.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
            accepted: s.accepted.load(Ordering::Relaxed),
            distinct_provider_jwts: s.jwts.lock().unwrap().len() as u64,
            oauth_token_requests: s.oauth_requests.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            token_updates_refused: s.token_updates_refused.load(Ordering::Relaxed),
            refused_streams: s.refused_streams.load(Ordering::Relaxed),
            goaways: s.goaways.load(Ordering::Relaxed),
            quota_exceeded: s.quota_exceeded.load(Ordering::Relaxed),
            quota_windows: s.quota_windows.lock().unwrap().clone(),
        }
    }

    /// Replaces the fault script; `times` counts start again.
    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.lock().unwrap() = faults;
        self.state.per_token.lock().unwrap().clear();
    }

    pub fn shutdown(self) {
        self.stop.cancel();
    }
}

impl Drop for MockProviders {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn tls_config(pki: &pki::Pki) -> Result<rustls::ServerConfig, MockError> {
    let tls = |e: rustls::Error| MockError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).map_err(tls)?;
    // A client certificate is optional: APNs token auth sends none.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| MockError::Tls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
        .map_err(tls)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Serves one gateway: `sandbox` is the APNs sandbox one.
async fn accept_loop(
    listener: TcpListener,
    sandbox: bool,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    max_streams: u32,
    stop: CancellationToken,
) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = stop.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, state, stop) = (acceptor.clone(), state.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            state.connections.fetch_add(1, Ordering::Relaxed);
            // The verifier only lets valid client certificates through.
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let kill = CancellationToken::new();
            let ctl = Arc::new(conn::ConnCtl::default());
            let service = {
                let (state, kill, ctl) = (state.clone(), kill.clone(), ctl.clone());
                hyper::service::service_fn(move |req| {
                    let (state, kill, ctl) = (state.clone(), kill.clone(), ctl.clone());
                    async move {
                        ctl.in_flight.fetch_add(1, Ordering::AcqRel);
                        let authenticated = ctl.authenticated.load(Ordering::Acquire);
                        let path = req.uri().path();
                        let send = path.starts_with("/3/") || path.starts_with("/v1/");
                        let outcome = handle(&state, req, client_cert, sandbox).await;
                        ctl.in_flight.fetch_sub(1, Ordering::AcqRel);
                        // Like APNs: one stream until the sender's
                        // credentials are accepted, then the real limit.
                        if send && !authenticated {
                            if let Outcome::Answer(a) | Outcome::GoAway(a) = &outcome {
                                if !matches!(a.status().as_u16(), 401 | 403) {
                                    ctl.authenticated.store(true, Ordering::Release);
                                }
                            }
                        }
                        match outcome {
                            Outcome::Answer(a) => Ok(a),
                            Outcome::GoAway(a) => {
                                if !ctl.go_away.swap(true, Ordering::AcqRel) {
                                    state.goaways.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(a)
                            }
                            // hyper resets the stream with the h2 reason it
                            // finds in the service's error.
                            Outcome::Refused => {
                                state.refused_streams.fetch_add(1, Ordering::Relaxed);
                                Err(h2::Error::from(h2::Reason::REFUSED_STREAM))
                            }
                            Outcome::Reset => {
                                kill.cancel();
                                std::future::pending().await
                            }
                        }
                    }
                })
            };
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .max_concurrent_streams(max_streams)
                .serve_connection(
                    TokioIo::new(conn::Wire::new(tls, ctl.clone(), max_streams)),
                    service,
                );
            let gone_away = async {
                ctl.sent.notified().await;
                // Answer the streams at or below the GOAWAY's last id (a
                // few may still be on their way to the handler), then close.
                let mut quiet = 0;
                for _ in 0..60 {
                    sleep_ms(50).await;
                    if ctl.in_flight.load(Ordering::Acquire) == 0 {
                        quiet += 1;
                        if quiet == 3 {
                            break;
                        }
                    } else {
                        quiet = 0;
                    }
                }
            };
            tokio::select! {
                _ = conn => {},
                _ = gone_away => {},
                _ = kill.cancelled() => {}, // dropping the connection resets it
                _ = stop.cancelled() => {},
            }
        });
    }
}

async fn handle(
    state: &State,
    req: Request<Incoming>,
    client_cert: bool,
    sandbox: bool,
) -> Outcome {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Outcome::Reset,
    };
    let path = parts.uri.path().to_owned();
    if path.starts_with("/3/") {
        state.requests.fetch_add(1, Ordering::Relaxed);
        apns::handle(state, &parts, &path, body, client_cert, sandbox).await
    } else if path == "/token" {
        Outcome::Answer(fcm::token(state, &parts, &body))
    } else if path.starts_with("/v1/") {
        state.requests.fetch_add(1, Ordering::Relaxed);
        fcm::send(state, &parts, &path, body).await
    } else {
        Outcome::Answer(json(404, &serde_json::json!({"error": "not found"}), &[]))
    }
}

pub(crate) fn json(status: u16, body: &serde_json::Value, headers: &[(&str, String)]) -> Answer {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

impl State {
    /// The scripted or random fault for this request, if any. Random rates
    /// yield the same faults a rule can name, so each route answers them
    /// in one place.
    fn fault_for(&self, token: &str) -> Option<Fault> {
        let nth = {
            let mut seen = self.per_token.lock().unwrap();
            let n = match seen.get_mut(token) {
                Some(n) => n,
                None => seen.entry(token.to_owned()).or_insert(0),
            };
            *n += 1;
            *n
        };
        let faults = self.faults.lock().unwrap();
        if let Some(rule) = faults
            .rules
            .iter()
            .find(|r| token.starts_with(&r.token_prefix))
        {
            return rule
                .times
                .is_none_or(|t| nth <= t)
                .then(|| rule.fault.clone());
        }
        let mut x = fastrand::f64();
        for (rate, f) in [
            (faults.unavailable_rate, Fault::Unavailable),
            (
                faults.rate_limited_rate,
                Fault::RateLimited {
                    retry_after_secs: faults.retry_after_secs,
                },
            ),
            (faults.slow_rate, Fault::Slow { ms: faults.slow_ms }),
            (faults.reset_rate, Fault::Reset),
            (faults.refused_stream_rate, Fault::RefusedStream),
            (faults.goaway_rate, Fault::GoAway),
        ] {
            if x < rate {
                return Some(f);
            }
            x -= rate;
        }
        None
    }

    /// A request the provider takes: recorded (the device gets it), then
    /// answered with `ok` — unless a connection fault says late, with a
    /// GOAWAY, or not at all.
    async fn accept(
        &self,
        route: Route,
        token: &str,
        headers: &hyper::HeaderMap,
        body: serde_json::Value,
        fault: Option<Fault>,
        ok: impl FnOnce() -> Answer,
    ) -> Outcome {
        let (mut late, mut go_away) = (0, false);
        match fault {
            Some(Fault::Reset) => return Outcome::Reset,
            Some(Fault::RefusedStream) => return Outcome::Refused,
            Some(Fault::AcceptThenReset) => {
                self.record(route, token, headers, body);
                return Outcome::Reset;
            }
            Some(Fault::Slow { ms }) => late = ms,
            Some(Fault::GoAway) => go_away = true,
            _ => {}
        }
        self.record(route, token, headers, body);
        // Accepted first, answered late: a client that gives up before the
        // answer has been delivered all the same, as with a real provider.
        if late > 0 {
            sleep_ms(late).await;
        }
        if go_away {
            Outcome::GoAway(ok())
        } else {
            Outcome::Answer(ok())
        }
    }

    fn record(
        &self,
        route: Route,
        token: &str,
        headers: &hyper::HeaderMap,
        body: serde_json::Value,
    ) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        if self.count_duplicates
            && !self
                .seen
                .lock()
                .unwrap()
                .insert(content_hash(route, token, &body))
        {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        if !self.record {
            return;
        }
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        self.received.lock().unwrap().push(Received {
            route,
            token: token.to_owned(),
            headers,
            body,
        });
    }

    /// The mock's "now" in seconds since the epoch (with its clock skew).
    fn now_secs(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.clock_skew_secs
    }

    /// Counts an FCM send against the project quota; `Some(retry_after)`
    /// when it is over.
    fn over_quota(&self) -> Option<u64> {
        let q = self.fcm_quota?;
        let window = q.window_secs.max(1);
        let elapsed = self.started.elapsed();
        let i = (elapsed.as_secs() / window) as usize;
        let mut w = self.quota_windows.lock().unwrap();
        if w.len() <= i {
            w.resize(i + 1, 0);
        }
        w[i] += 1;
        if w[i] <= q.limit {
            return None;
        }
        self.quota_exceeded.fetch_add(1, Ordering::Relaxed);
        Some(
            ((i as u64 + 1) * window)
                .saturating_sub(elapsed.as_secs())
                .max(1),
        )
    }
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// What identifies one notification to one device across retries: the
/// APNs payload, or the FCM message without `android.ttl` (the remaining
/// lifetime, which changes from one try to the next).
fn content_hash(route: Route, token: &str, body: &serde_json::Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (route as u8, token).hash(&mut h);
    let mut body = std::borrow::Cow::Borrowed(body);
    if body.pointer("/message/android/ttl").is_some() {
        if let Some(android) = body.to_mut().pointer_mut("/message/android") {
            android.as_object_mut().map(|a| a.remove("ttl"));
        }
    }
    body.to_string().hash(&mut h);
    h.finish()
}

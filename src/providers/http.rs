//! The HTTP/2 client shared by the real providers.
//!
//! Both APNs and FCM want long-lived, multiplexed HTTP/2 connections. Each
//! `reqwest::Client` keeps one connection per host and multiplexes requests
//! over it, waiting for a free stream when the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` is reached; a provider holds a few
//! clients ([`Pool`]) and spreads requests over them for more than one
//! connection's worth of streams.
//!
//! A dropped connection must not cost the sends in flight on it, and there
//! may be hundreds. [`Pool::send`] sorts a failed send by what the server
//! can have seen of it:
//! - **never processed** — the server refused the stream (`REFUSED_STREAM`),
//!   its id is above a GOAWAY's last-stream-id, or the connection could not
//!   be made: re-sent at once on the pool's other connections (each at most
//!   once), costing nothing;
//! - **ambiguous** — the request went out and the connection then reset or
//!   closed with no answer: [`SendError::ConnectionLost`], which the retry
//!   policy re-sends shortly without spending an attempt;
//! - a timeout or any other failure stays [`SendError::Transient`].
//!
//! reqwest's own retry of protocol NACKs is turned off: it retries on the
//! same connection under a budget of 20 % extra requests, which a GOAWAY
//! over hundreds of streams exhausts at once; the pool does it instead,
//! unbudgeted but bounded by the number of connections.
//!
//! A connection that fails to connect is not hammered: it backs off
//! (exponential with jitter, per connection) while sends go to the others.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::SendError;

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("cannot read {what} {path}: {cause}")]
    Read {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{what} {path} is not a valid PEM certificate/key: {cause}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        cause: reqwest::Error,
    },
    #[error("cannot build the HTTP/2 client: {0}")]
    Build(reqwest::Error),
}

/// Reads a file named in the configuration, saying which setting it was.
pub fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, HttpSetupError> {
    std::fs::read(path).map_err(|cause| HttpSetupError::Read {
        what,
        path: path.to_path_buf(),
        cause,
    })
}

/// What a provider client needs from its HTTP/2 connections.
pub struct ClientOptions<'a> {
    pub connections: u32,
    pub connect_timeout: Duration,
    /// Extra CA to trust besides the system's roots (tests, proxies).
    pub ca_file: Option<&'a Path>,
    /// PEM with a client certificate and its key (APNs certificate auth).
    pub identity_pem: Option<(Vec<u8>, &'a Path)>,
}

/// A few HTTP/2 clients, each its own connection, used round-robin.
pub struct Pool {
    conns: Vec<Conn>,
    next: AtomicUsize,
}

struct Conn {
    client: reqwest::Client,
    health: Mutex<Health>,
}

/// Connect failures in a row, and when this connection may try again.
#[derive(Default)]
struct Health {
    failures: u32,
    retry_at: Option<Instant>,
}

/// First reconnect delay after a failed connect; doubles per failure.
const RECONNECT_BASE: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// How a failed send's request fared, as far as the server is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The connection could not be made: nothing was sent.
    NotConnected,
    /// Sent, but refused or cut off by GOAWAY before the server processed it.
    NotProcessed,
    /// Sent, then the connection dropped without an answer.
    Ambiguous,
    /// Anything else (the server reset the stream, a malformed answer, our
    /// own deadline passed).
    Failed,
}

impl Pool {
    pub fn new(o: ClientOptions<'_>) -> Result<Pool, HttpSetupError> {
        let ca = match o.ca_file {
            Some(path) => Some(
                reqwest::Certificate::from_pem(&read_file("ca_file", path)?).map_err(|cause| {
                    HttpSetupError::Pem {
                        what: "ca_file",
                        path: path.to_path_buf(),
                        cause,
                    }
                })?,
            ),
            None => None,
        };
        let identity = match &o.identity_pem {
            Some((pem, path)) => {
                Some(
                    reqwest::Identity::from_pem(pem).map_err(|cause| HttpSetupError::Pem {
                        what: "client certificate",
                        path: path.to_path_buf(),
                        cause,
                    })?,
                )
            }
            None => None,
        };
        let conns = (0..o.connections.max(1))
            .map(|_| {
                let mut b = reqwest::Client::builder()
                    .http2_prior_knowledge()
                    .use_rustls_tls()
                    .https_only(false)
                    .connect_timeout(o.connect_timeout)
                    // Keep idle connections: a reconnect costs a TLS
                    // handshake and, for APNs, a token re-validation.
                    .pool_idle_timeout(None)
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .http2_keep_alive_timeout(Duration::from_secs(10))
                    .http2_keep_alive_while_idle(true)
                    .http2_adaptive_window(true)
                    .retry(reqwest::retry::never())
                    .user_agent(concat!("pushrelay/", env!("CARGO_PKG_VERSION")));
                if let Some(ca) = &ca {
                    b = b.add_root_certificate(ca.clone());
                }
                if let Some(id) = &identity {
                    b = b.identity(id.clone());
                }
                Ok(Conn {
                    client: b.build().map_err(HttpSetupError::Build)?,
                    health: Mutex::new(Health::default()),
                })
            })
            .collect::<Result<Vec<_>, HttpSetupError>>()?;
        Ok(Pool {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// A client whose connection is not backing off, if any; for requests
    /// that are not pushes (the OAuth token exchange).
    pub fn client(&self) -> &reqwest::Client {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let n = self.conns.len();
        &(0..n)
            .map(|k| &self.conns[(start + k) % n])
            .find(|c| c.ready(now))
            .unwrap_or(&self.conns[start % n])
            .client
    }

    /// Sends the request `build` makes, on the next healthy connection.
    /// A request the server never processed is re-sent at once on the
    /// other connections (each once; a single connection is tried twice,
    /// the second time reconnected); see the module doc for the rest.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        let n = self.conns.len();
        let tries = n.max(2);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last: Option<(Fate, String)> = None;
        let mut sent = 0;
        for k in 0..tries {
            let conn = &self.conns[(start + k) % n];
            if !conn.ready(Instant::now()) {
                continue;
            }
            sent += 1;
            match build(&conn.client).send().await {
                Ok(resp) => {
                    conn.connected();
                    return Ok(resp);
                }
                Err(e) => {
                    let fate = fate(&e);
                    let reason = describe(e);
                    match fate {
                        Fate::NotConnected => conn.connect_failed(),
                        Fate::NotProcessed => {
                            metrics::counter!("pushrelay_provider_resends_total").increment(1);
                        }
                        Fate::Ambiguous => return Err(SendError::ConnectionLost { reason }),
                        Fate::Failed => {
                            return Err(SendError::Transient {
                                status: None,
                                reason,
                                retry_after: None,
                            })
                        }
                    }
                    last = Some((fate, reason));
                }
            }
        }
        Err(match last {
            // Refused everywhere: still nothing processed, so no attempt
            // is spent; the retry policy comes back shortly.
            Some((Fate::NotProcessed, reason)) => SendError::ConnectionLost {
                reason: format!("not processed by the server on {sent} tries: {reason}"),
            },
            Some((_, reason)) => SendError::Transient {
                status: None,
                reason,
                retry_after: None,
            },
            None => SendError::Transient {
                status: None,
                reason: format!(
                    "could not connect: all {n} connections are failing and waiting to reconnect (next in {} ms)",
                    self.next_reconnect().as_millis()
                ),
                retry_after: None,
            },
        })
    }

    fn next_reconnect(&self) -> Duration {
        let now = Instant::now();
        self.conns
            .iter()
            .filter_map(|c| c.health.lock().unwrap().retry_at)
            .map(|t| t.saturating_duration_since(now))
            .min()
            .unwrap_or_default()
    }
}

impl Conn {
    fn ready(&self, now: Instant) -> bool {
        self.health
            .lock()
            .unwrap()
            .retry_at
            .is_none_or(|t| now >= t)
    }

    fn connected(&self) {
        let mut h = self.health.lock().unwrap();
        if h.failures > 0 || h.retry_at.is_some() {
            *h = Health::default();
        }
    }

    fn connect_failed(&self) {
        let mut h = self.health.lock().unwrap();
        h.failures = h.failures.saturating_add(1);
        let delay = reconnect_delay(h.failures);
        h.retry_at = Some(Instant::now() + delay);
        metrics::counter!("pushrelay_provider_connect_failures_total").increment(1);
    }
}

/// Exponential in the failures in a row, capped, with full jitter over
/// its upper half so connections that failed together do not retry
/// together.
fn reconnect_delay(failures: u32) -> Duration {
    let exp = RECONNECT_BASE.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let cap = exp.min(RECONNECT_MAX);
    cap.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// What the server can have seen of a request that failed with `e`.
fn fate(e: &reqwest::Error) -> Fate {
    if e.is_connect() {
        return Fate::NotConnected;
    }
    if e.is_timeout() {
        return Fate::Failed;
    }
    let mut source = std::error::Error::source(e);
    let mut io = false;
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            // A REFUSED_STREAM reset, or a stream above the last-stream-id
            // of the server's GOAWAY (h2 fails exactly those with a remote
            // go-away error): RFC 9113 §8.7 says neither was processed.
            if h2.is_remote() && h2.reason() == Some(h2::Reason::REFUSED_STREAM) && h2.is_reset() {
                return Fate::NotProcessed;
            }
            if h2.is_remote() && h2.is_go_away() {
                return Fate::NotProcessed;
            }
            if h2.is_io() {
                return Fate::Ambiguous;
            }
            if h2.is_go_away() {
                // Our side gave up on the connection (keep-alive timeout,
                // protocol error) with this stream open.
                return Fate::Ambiguous;
            }
            return Fate::Failed;
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            // Queued for a connection that closed before it went out
            // (hyper says "dispatch task is gone" when the connection's
            // task ended with the request still in its queue; in-flight
            // streams fail with the h2 error above instead).
            if h.is_canceled() || h.to_string().contains("dispatch task is gone") {
                return Fate::NotProcessed;
            }
            if h.is_closed() || h.is_incomplete_message() {
                return Fate::Ambiguous;
            }
        }
        if s.is::<std::io::Error>() {
            io = true;
        }
        source = s.source();
    }
    if io {
        Fate::Ambiguous
    } else {
        Fate::Failed
    }
}

/// A transport error in words, without the request URL: APNs URLs carry
/// the device token, which must not reach logs or receipts.
pub fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let e = e.without_url();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` as RFC 9110 §10.2.3 allows it: delay-seconds (the form
/// APNs and Google use) or an HTTP date (any of the three formats); a date
/// in the past means "now".
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, std::time::SystemTime::now())
}

fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date.
        let date = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let now = date - Duration::from_secs(90);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",  // IMF-fixdate
            "Sunday, 06-Nov-94 08:49:37 GMT", // obsolete RFC 850
            "Sun Nov  6 08:49:37 1994",       // obsolete asctime
        ] {
            assert_eq!(
                parse_retry_after(form, now),
                Some(Duration::from_secs(90)),
                "{form}"
            );
        }
        // A date already past: retry now, not never.
        assert_eq!(
            parse_retry_after(
                "Sun, 06 Nov 1994 08:49:37 GMT",
                date + Duration::from_secs(5)
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", SystemTime::now()), None);
    }

    #[test]
    fn reconnect_backoff_grows_and_is_capped() {
        let ms = Duration::from_millis;
        for _ in 0..100 {
            let d = reconnect_delay(1);
            assert!(d >= ms(125) && d <= ms(250), "1: {d:?}");
            let d = reconnect_delay(2);
            assert!(d >= ms(250) && d <= ms(500), "2: {d:?}");
            let d = reconnect_delay(40);
            assert!(d >= ms(15_000) && d <= ms(30_000), "40: {d:?}");
        }
    }
}

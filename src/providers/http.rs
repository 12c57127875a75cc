//! The HTTP/2 client shared by the real providers.
//!
//! Both APNs and FCM want long-lived, multiplexed HTTP/2 connections. Each
//! `reqwest::Client` keeps one connection per host and multiplexes requests
//! over it, waiting for a free stream when the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` is reached; a provider holds a few
//! clients ([`Pool`]) and spreads requests over them for more than one
//! connection's worth of streams. A dropped connection is re-established on
//! the next request; the failed request is reported as transient, so the
//! retry policy's backoff applies to reconnects too.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
    clients: Vec<reqwest::Client>,
    next: AtomicUsize,
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
        let clients = (0..o.connections.max(1))
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
                    .user_agent(concat!("pushrelay/", env!("CARGO_PKG_VERSION")));
                if let Some(ca) = &ca {
                    b = b.add_root_certificate(ca.clone());
                }
                if let Some(id) = &identity {
                    b = b.identity(id.clone());
                }
                b.build().map_err(HttpSetupError::Build)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pool {
            clients,
            next: AtomicUsize::new(0),
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        &self.clients[i]
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

/// `Retry-After` in seconds (the form APNs and Google use).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

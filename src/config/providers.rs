//! `[apps.<name>]` and `[simulator]`: which provider sends each app's
//! notifications on each platform, and with which credentials. Plain
//! settings; the clients that use them live in `providers`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::model::Platform;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// The locale used when neither the device's locale nor its language
    /// has a template.
    #[serde(default = "default_locale")]
    pub default_locale: String,
    /// Bulk sends (campaigns) due inside these hours of a device's local
    /// time wait for their end, e.g. "21:00-08:00"; urgent ones never do.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    pub ios: Option<ProviderSettings>,
    pub android: Option<ProviderSettings>,
}

/// A daily window of local time, `start-end` (across midnight when the
/// start is later than the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: chrono::NaiveTime,
    pub end: chrono::NaiveTime,
}

impl std::str::FromStr for QuietHours {
    type Err = String;
    fn from_str(s: &str) -> Result<QuietHours, String> {
        let bad = || format!("quiet_hours {s:?} is not a window like \"21:00-08:00\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let parse =
            |t: &str| chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let (start, end) = (parse(a)?, parse(b)?);
        if start == end {
            return Err(format!(
                "quiet_hours {s:?} starts and ends at the same time; leave it out for none"
            ));
        }
        Ok(QuietHours { start, end })
    }
}

impl<'de> Deserialize<'de> for QuietHours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<QuietHours, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn default_locale() -> String {
    "en".into()
}

impl AppSettings {
    pub fn provider(&self, platform: Platform) -> Option<&ProviderSettings> {
        match platform {
            Platform::Ios => self.ios.as_ref(),
            Platform::Android => self.android.as_ref(),
        }
    }
}

/// Which provider sends an app's notifications for one platform.
// Read once at start and cloned rarely: the size of the APNs variant does
// not matter, and boxing it would burden every place that builds one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum ProviderSettings {
    /// The in-process simulator (see `[simulator]`): no credentials needed.
    Simulator,
    /// Apple Push Notification service (iOS devices).
    Apns(ApnsSettings),
    /// Firebase Cloud Messaging HTTP v1 (Android, or iOS through Firebase).
    Fcm(FcmSettings),
}

/// A configured secret: `Debug` never shows it.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// `[apps.<name>.ios]` with `provider = "apns"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsSettings {
    /// The app's bundle id (bare, no `.voip`): `apns-topic` is this plus
    /// the suffix Apple expects for each push type.
    pub topic: String,
    /// The default `apns-push-type` (a message may set its own): alert,
    /// background, voip, complication, fileprovider, location,
    /// liveactivity, pushtotalk or mdm.
    #[serde(default)]
    pub push_type: crate::content::PushType,
    /// Token auth: the 10-character team id, the key id and the .p8 file.
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub key_file: Option<PathBuf>,
    /// A different key for the sandbox gateway (development builds), when
    /// the production key is not to be used there: `sandbox_key_id` and
    /// `sandbox_key_file`, and `sandbox_team_id` if the team differs.
    /// Token auth only.
    pub sandbox_team_id: Option<String>,
    pub sandbox_key_id: Option<String>,
    pub sandbox_key_file: Option<PathBuf>,
    /// Certificate auth: a PEM file with the certificate (and key, unless
    /// `certificate_key_file` is given).
    pub certificate_file: Option<PathBuf>,
    pub certificate_key_file: Option<PathBuf>,
    /// Certificate auth from a PKCS#12 (.p12) file and its password (set
    /// the password through PUSHRELAY__APPS__<APP>__IOS__PKCS12_PASSWORD).
    pub pkcs12_file: Option<PathBuf>,
    #[serde(default)]
    pub pkcs12_password: Secret,
    /// Gateways for production and sandbox (development build) tokens; each
    /// device's `environment` picks one. Override both for a test server.
    #[serde(default = "default_production_url")]
    pub production_url: String,
    #[serde(default = "default_sandbox_url")]
    pub sandbox_url: String,
    /// An extra CA to trust (a test server's or a corporate proxy's).
    pub ca_file: Option<PathBuf>,
    /// HTTP/2 connections per gateway (each up to the server's stream limit).
    #[serde(default = "default_connections")]
    pub connections: u32,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Provider-token lifetime before re-signing, 20–60 minutes.
    #[serde(default = "default_refresh_mins")]
    pub token_refresh_mins: u64,
    /// How long the app's sends pause after APNs answers
    /// TooManyProviderTokenUpdates (the key was re-signed too often; the
    /// current token is kept and re-signing waits out Apple's 20 minutes).
    #[serde(default = "default_token_update_pause_secs")]
    pub token_update_pause_secs: u64,
}

fn default_token_update_pause_secs() -> u64 {
    60
}

fn default_production_url() -> String {
    "https://api.push.apple.com".into()
}
fn default_sandbox_url() -> String {
    "https://api.sandbox.push.apple.com".into()
}
fn default_connections() -> u32 {
    2
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_refresh_mins() -> u64 {
    40
}

/// `[apps.<name>.android]` (or `.ios`) with `provider = "fcm"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmSettings {
    /// The service-account JSON key downloaded from the Firebase console.
    pub service_account_file: PathBuf,
    /// Defaults to the service account's `project_id`.
    pub project_id: Option<String>,
    #[serde(default = "default_fcm_base_url")]
    pub base_url: String,
    /// An extra CA to trust (a test server's or a corporate proxy's).
    pub ca_file: Option<PathBuf>,
    /// Sends per minute for the project, shared by every app using it.
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// The share of that rate bulk sends (campaigns) may take; the rest is
    /// kept for urgent alerts, which then never wait behind a campaign for
    /// the quota.
    #[serde(default = "default_bulk_share")]
    pub bulk_share: f64,
    #[serde(default = "default_connections")]
    pub connections: u32,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_fcm_base_url() -> String {
    "https://fcm.googleapis.com".into()
}
fn default_rate() -> u32 {
    600_000
}
fn default_bulk_share() -> f64 {
    0.8
}

/// `[simulator]`: the in-process provider's latency and fault mix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorSettings {
    /// Base latency of every send.
    pub latency_ms: u64,
    /// Extra uniform random latency on top of `latency_ms`.
    pub latency_jitter_ms: u64,
    /// Share of sends answered 503 ServiceUnavailable.
    pub transient_error_rate: f64,
    /// Share of sends answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limited_rate: f64,
    pub retry_after_secs: u64,
    /// Share of sends answered 410 Unregistered.
    pub dead_token_rate: f64,
    /// Share of sends that never answer (the caller's timeout fires).
    pub timeout_rate: f64,
    pub rules: Vec<SimulatorRule>,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            latency_ms: 2,
            latency_jitter_ms: 3,
            transient_error_rate: 0.0,
            rate_limited_rate: 0.0,
            retry_after_secs: 1,
            dead_token_rate: 0.0,
            timeout_rate: 0.0,
            rules: Vec::new(),
        }
    }
}

impl SimulatorSettings {
    pub(crate) fn problems(&self) -> Vec<String> {
        let rates = [
            ("transient_error_rate", self.transient_error_rate),
            ("rate_limited_rate", self.rate_limited_rate),
            ("dead_token_rate", self.dead_token_rate),
            ("timeout_rate", self.timeout_rate),
        ];
        let mut p: Vec<String> = rates
            .iter()
            .filter(|(_, r)| !(0.0..=1.0).contains(r))
            .map(|(k, r)| format!("simulator.{k} is {r}; a rate is between 0.0 and 1.0"))
            .collect();
        let total: f64 = rates.iter().map(|(_, r)| r).sum();
        if total > 1.0 {
            p.push(format!(
                "simulator fault rates add up to {total}; together they must not exceed 1.0"
            ));
        }
        p.extend(
            self.rules
                .iter()
                .filter(|r| r.token_prefix.is_empty())
                .map(|_| {
                    "a simulator rule has an empty token_prefix; it would match every token"
                        .to_string()
                }),
        );
        p
    }
}

/// Tokens starting with `token_prefix` get `behaviour`, for their first
/// `times` attempts (every attempt when `times` is absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorRule {
    pub token_prefix: String,
    pub behaviour: Behaviour,
    pub times: Option<u64>,
    /// For `rate_limited`: the `Retry-After` to answer with.
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// 410 Unregistered.
    Unregistered,
    /// 400 BadCollapseId: a permanent rejection of the message.
    BadMessage,
    /// 503 ServiceUnavailable.
    Transient,
    /// 429 TooManyRequests with Retry-After.
    RateLimited,
    /// No answer at all.
    Timeout,
    /// 403 InvalidProviderToken: our credentials are wrong.
    ConfigError,
    /// The send panics (a bug in a provider client), to prove a panic
    /// costs neither a send slot nor the delivery.
    Panic,
}

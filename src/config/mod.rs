//! Configuration: `config.toml`, layered under environment variables.
//!
//! Every key has a default, so a config file only states what differs. The
//! layers, lowest first: built-in defaults, the config file, `DATABASE_URL`,
//! then `PUSHRELAY__SECTION__KEY` variables (for example
//! `PUSHRELAY__DATABASE__URL` or `PUSHRELAY__WORKER__LEASE_SECS`).
//! [`Settings::validate`] turns a loaded config into either a usable one or a
//! list of problems written for the operator, which `pushrelay check-config`
//! prints. It is plain data at the bottom of the dependency graph: the
//! modules that act on it import it, never the other way round.

mod providers;
mod retry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use self::providers::{
    parse_platform_application_arn, ApnsSettings, AppSettings, Behaviour, FcmSettings,
    ProviderSettings, Secret, SimulatorRule, SimulatorSettings, SnsSettings,
};
pub use self::retry::{RetrySchedule, RetrySettings};
use crate::model::Platform;

/// The database URL used when nothing else is configured (the demo's).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/pushrelay";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("the configuration file {0} does not exist; pass --config with the right path or unset PUSHRELAY_CONFIG")]
    MissingFile(PathBuf),
    #[error("the configuration has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Invalid(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub worker: WorkerSettings,
    pub retry: RetrySettings,
    pub templates: TemplateSettings,
    pub lanes: LaneSettings,
    pub simulator: SimulatorSettings,
    pub telemetry: TelemetrySettings,
    pub metrics: MetricsSettings,
    pub api: ApiSettings,
    pub campaigns: CampaignSettings,
    pub console: ConsoleSettings,
    #[cfg(feature = "mock")]
    pub mock: MockSettings,
    /// Without the mock servers built in, their `[mock]` table (as in the
    /// shipped config.toml) is accepted and ignored.
    #[cfg(not(feature = "mock"))]
    pub mock: serde::de::IgnoredAny,
    pub apps: BTreeMap<String, AppSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: DEFAULT_DATABASE_URL.into(),
            max_connections: 16,
            connect_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Names this process in leases and receipts; empty means host:pid.
    pub id: String,
    /// Notifications claimed per fan-out transaction.
    pub fanout_batch: u32,
    /// Deliveries claimed per dispatch query, per lane.
    pub dispatch_batch: u32,
    /// A process whose heartbeat is older than this is taken for dead and
    /// the deliveries it holds are re-queued. A live process keeps its
    /// leases however slow the database is.
    pub lease_secs: u64,
    /// Fallback poll when no NOTIFY arrives (scheduled sends, retries).
    pub poll_interval_ms: u64,
    /// A provider call that takes longer is abandoned and retried.
    pub send_timeout_ms: u64,
    /// On SIGTERM: how long in-flight sends may take to finish.
    pub shutdown_grace_secs: u64,
    /// How long sends to an app's provider pause after it rejects our
    /// credentials, so deliveries keep their attempts.
    pub config_error_pause_secs: u64,
    /// The circuit breaker judges an app environment's answers over the
    /// last `breaker_window_secs`: with at least `breaker_threshold`
    /// answers in it, it opens when `breaker_failure_rate` of them were
    /// transient failures. Lost connections are never counted.
    pub breaker_threshold: u32,
    pub breaker_window_secs: u64,
    pub breaker_failure_rate: f64,
    /// How long an open breaker keeps that app environment's sends on hold.
    pub breaker_cooldown_secs: u64,
    /// Finished notifications older than this are deleted (0 keeps all).
    pub retention_days: u32,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            id: String::new(),
            fanout_batch: 500,
            dispatch_batch: 1000,
            lease_secs: 30,
            poll_interval_ms: 250,
            send_timeout_ms: 10_000,
            shutdown_grace_secs: 10,
            config_error_pause_secs: 60,
            breaker_threshold: 50,
            breaker_window_secs: 10,
            breaker_failure_rate: 0.5,
            breaker_cooldown_secs: 10,
            retention_days: 30,
        }
    }
}

impl WorkerSettings {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    /// How often a live process proves it is alive: often enough that a
    /// few missed beats never cost it its leases.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.lease() / 5).max(Duration::from_millis(100))
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateSettings {
    pub dir: PathBuf,
}

impl Default for TemplateSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("templates"),
        }
    }
}

/// Each platform is dispatched by its own lane with its own concurrency
/// budget, so one provider's slowness cannot take another's send slots.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaneSettings {
    pub ios: LaneSetting,
    pub android: LaneSetting,
}

impl LaneSettings {
    pub fn get(&self, platform: Platform) -> &LaneSetting {
        match platform {
            Platform::Ios => &self.ios,
            Platform::Android => &self.android,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaneSetting {
    /// Deliveries this process holds at once for this platform: being
    /// sent, or sent and waiting for their result to be written.
    pub concurrency: u32,
    /// The share of those slots bulk deliveries may hold, so an urgent
    /// one always finds a free slot however large a campaign is.
    pub bulk_share: f64,
}

impl Default for LaneSetting {
    fn default() -> Self {
        Self {
            concurrency: 2000,
            bulk_share: 0.25,
        }
    }
}

impl LaneSetting {
    /// Slots bulk deliveries may hold (at least one).
    pub fn bulk_slots(&self) -> usize {
        ((self.concurrency as f64 * self.bulk_share).floor() as usize).max(1)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `pretty` for people, `json` for log shippers.
    pub format: String,
    /// A tracing filter, overridden by `RUST_LOG`.
    pub level: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            format: "pretty".into(),
            level: "info".into(),
        }
    }
}

/// `pushrelay mock-providers` and the demo's mock APNs/FCM servers.
#[cfg(feature = "mock")]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockSettings {
    /// Where `pushrelay mock-providers` listens (the demo picks a free port).
    pub listen: String,
    /// Where `pushrelay mock-providers` writes the credentials it accepts.
    pub credentials_dir: PathBuf,
    /// Scripted and random faults (see `Faults` in `src/mock`).
    pub faults: crate::mock::Faults,
}

#[cfg(feature = "mock")]
impl Default for MockSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            credentials_dir: PathBuf::from("mock-credentials"),
            faults: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Address for the Prometheus `/metrics` endpoint of `pushrelay run`,
    /// e.g. "127.0.0.1:9464"; empty disables it.
    pub listen: String,
}

/// The HTTP API of `pushrelay run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Address to serve the API on, e.g. "127.0.0.1:8080" (the shipped
    /// config.toml's); empty, the default, turns the API off (the daemon
    /// then only works the outbox), so several daemons on one host do not
    /// fight over a port unless configured to serve.
    pub listen: String,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Requests per second one API key may make (a burst of as many is
    /// allowed); a key can carry its own.
    pub rate_per_key: u32,
    /// How long a verified key is trusted before it is looked up again: a
    /// revoked key stops working within this long.
    pub key_cache_secs: u64,
    /// Single enqueues arriving together are written in one statement of
    /// at most this many rows.
    pub enqueue_batch: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: String::new(),
            max_body_bytes: 4 * 1024 * 1024,
            rate_per_key: 2_000,
            key_cache_secs: 5,
            enqueue_batch: 500,
        }
    }
}

/// `[campaigns]`: how the pump turns a campaign's targets into outbox
/// rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignSettings {
    /// Targets turned into notifications per step, at most.
    pub batch: u32,
    /// A campaign's notifications waiting for fan-out, at most; the pump
    /// waits while more are (bulk fan-out only takes what the lanes can
    /// send, so this is what keeps a paused campaign's unsent rows few).
    pub backlog: u32,
    /// Device ids evaluated per statement while a campaign starts.
    pub evaluate_chunk: u32,
    /// How often the pump looks for campaign work when there was none.
    pub tick_ms: u64,
    /// A user list upload (CSV) larger than this is refused with 413.
    pub max_upload_bytes: u64,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self {
            batch: 2_000,
            backlog: 4_000,
            evaluate_chunk: 50_000,
            tick_ms: 200,
            max_upload_bytes: 512 * 1024 * 1024,
        }
    }
}

impl CampaignSettings {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }
}

/// `[console]`: the support console, served with the API under
/// `/console/` (README, "Support console").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Serve the console where the API is served.
    pub enabled: bool,
    /// The support team's time zone (IANA name): every time on the
    /// console's pages is shown in it, with its abbreviation.
    pub timezone: String,
    /// A sign-in lasts this long (a support shift), however active.
    pub session_hours: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            timezone: "UTC".into(),
            session_hours: 12,
        }
    }
}

impl ConsoleSettings {
    /// The configured zone; UTC when the name is not one (which
    /// [`Settings::validate`] refuses before the daemon starts).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    pub fn session(&self) -> Duration {
        Duration::from_secs(u64::from(self.session_hours) * 3600)
    }
}

impl ApiSettings {
    pub fn key_cache(&self) -> Duration {
        Duration::from_secs(self.key_cache_secs)
    }
}

impl Settings {
    /// Loads `path` (if given; else `config.toml` when present) under the
    /// environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        match path {
            Some(p) if !p.exists() => return Err(ConfigError::MissingFile(p.to_path_buf())),
            Some(p) => builder = builder.add_source(config::File::from(p)),
            None => {
                builder = builder.add_source(config::File::with_name("config.toml").required(false))
            }
        }
        // DATABASE_URL is the convention most tools share; the more specific
        // PUSHRELAY__DATABASE__URL still wins when both are set.
        if let (Ok(url), Err(_)) = (
            std::env::var("DATABASE_URL"),
            std::env::var("PUSHRELAY__DATABASE__URL"),
        ) {
            builder = builder.set_override("database.url", url)?;
        }
        builder = builder.add_source(
            config::Environment::with_prefix("PUSHRELAY")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        Ok(settings)
    }

    /// Checks what deserialization cannot: value ranges and relations
    /// between keys. Returns every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = self
            .database
            .url
            .parse::<sqlx::postgres::PgConnectOptions>()
        {
            problems.push(format!(
                "database.url is not a PostgreSQL URL ({e}); expected something like {DEFAULT_DATABASE_URL}"
            ));
        }
        if self.database.max_connections < 4 {
            problems.push(format!(
                "database.max_connections is {}; the daemon needs at least 4 (fan-out, two lanes, results)",
                self.database.max_connections
            ));
        }
        let w = &self.worker;
        for (key, value) in [
            ("worker.fanout_batch", w.fanout_batch as u64),
            ("worker.dispatch_batch", w.dispatch_batch as u64),
            ("worker.lease_secs", w.lease_secs),
            ("worker.poll_interval_ms", w.poll_interval_ms),
            ("worker.send_timeout_ms", w.send_timeout_ms),
            ("worker.breaker_window_secs", w.breaker_window_secs),
            ("lanes.ios.concurrency", self.lanes.ios.concurrency as u64),
            ("campaigns.batch", self.campaigns.batch as u64),
            ("campaigns.backlog", self.campaigns.backlog as u64),
            (
                "campaigns.evaluate_chunk",
                self.campaigns.evaluate_chunk as u64,
            ),
            ("campaigns.tick_ms", self.campaigns.tick_ms),
            (
                "lanes.android.concurrency",
                self.lanes.android.concurrency as u64,
            ),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be greater than 0"));
            }
        }
        if !(w.breaker_failure_rate > 0.0 && w.breaker_failure_rate <= 1.0) {
            problems.push(format!(
                "worker.breaker_failure_rate is {}; use a share between 0 (exclusive) and 1, \
                 e.g. 0.5 opens the breaker when half the recent sends failed",
                w.breaker_failure_rate
            ));
        }
        for (platform, lane) in [("ios", &self.lanes.ios), ("android", &self.lanes.android)] {
            if !(lane.bulk_share > 0.0 && lane.bulk_share <= 1.0) {
                problems.push(format!(
                    "lanes.{platform}.bulk_share is {}; use a share between 0 (exclusive) and 1, \
                     e.g. 0.25 lets bulk deliveries hold a quarter of the lane's slots",
                    lane.bulk_share
                ));
            }
        }
        for (name, app) in &self.apps {
            for (platform, p) in Platform::ALL
                .iter()
                .filter_map(|&pl| Some((pl, app.provider(pl)?)))
            {
                if let ProviderSettings::Sns(s) = p {
                    problems.extend(s.problems(name, platform));
                }
                if let ProviderSettings::Fcm(f) = p {
                    if !(f.bulk_share > 0.0 && f.bulk_share <= 1.0) {
                        problems.push(format!(
                            "apps.{name}: the FCM bulk_share is {}; use a share between 0 \
                             (exclusive) and 1, e.g. 0.8 leaves a fifth of the project's rate \
                             to urgent alerts",
                            f.bulk_share
                        ));
                    }
                }
            }
        }
        for (name, schedule) in [
            ("retry.urgent", &self.retry.urgent),
            ("retry.bulk", &self.retry.bulk),
        ] {
            problems.extend(
                schedule
                    .problems()
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            );
        }
        if self.console.timezone.parse::<chrono_tz::Tz>().is_err() {
            problems.push(format!(
                "console.timezone is {:?}, which is not an IANA time zone; use a name like \"Europe/Berlin\" or \"UTC\"",
                self.console.timezone
            ));
        }
        if !(1..=168).contains(&self.console.session_hours) {
            problems.push(format!(
                "console.session_hours is {}; use 1 to 168 (a week): how long a console sign-in lasts",
                self.console.session_hours
            ));
        }
        if !matches!(self.telemetry.format.as_str(), "pretty" | "json") {
            problems.push(format!(
                "telemetry.format is {:?}; use \"pretty\" or \"json\"",
                self.telemetry.format
            ));
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            problems.push(format!(
                "metrics.listen is {:?}; use host:port like \"127.0.0.1:9464\", or \"\" to disable",
                self.metrics.listen
            ));
        }
        if !self.api.listen.is_empty() && self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "api.listen is {:?}; use host:port like \"127.0.0.1:8080\", or \"\" to turn the API off",
                self.api.listen
            ));
        }
        for (key, value) in [
            ("api.max_body_bytes", self.api.max_body_bytes as u64),
            ("api.rate_per_key", self.api.rate_per_key as u64),
            ("api.enqueue_batch", self.api.enqueue_batch as u64),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be greater than 0"));
            }
        }
        problems.extend(self.simulator.problems());
        if self.apps.is_empty() {
            problems.push(
                "no apps are configured; add an [apps.<name>] section with an ios or android provider".into(),
            );
        }
        for (name, app) in &self.apps {
            if !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            {
                problems.push(format!(
                    "app name {name:?} may only use lowercase letters, digits, '-' and '_'"
                ));
            }
            if let Some(ProviderSettings::Apns(_)) = &app.android {
                problems.push(format!(
                    "apps.{name}.android uses provider \"apns\"; APNs only reaches iOS devices (use \"fcm\")"
                ));
            }
            if app.ios.is_none() && app.android.is_none() {
                problems.push(format!(
                    "apps.{name} has no provider; add `ios = {{ provider = \"simulator\" }}` or an android one"
                ));
            }
        }
        if !self.templates.dir.is_dir() {
            problems.push(format!(
                "templates.dir {} is not a directory; point it at the folder holding <template>/<locale>.toml files",
                self.templates.dir.display()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_table_keeps_the_other_keys_defaults() {
        let path =
            std::env::temp_dir().join(format!("pushrelay-partial-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            r#"
[worker]
fanout_batch = 100
[retry.urgent]
base_ms = 500
cap_ms = 30000
min_delay_ms = 50
max_attempts = 5
[retry.bulk]
max_attempts = 3
[lanes.ios]
concurrency = 100
[apps.a]
ios = { provider = "simulator" }
[apps.b.android]
provider = "fcm"
service_account_file = "sa.json"
"#,
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        std::fs::remove_file(&path).unwrap();

        let urgent = RetrySchedule {
            base_ms: 500,
            cap_ms: 30_000,
            min_delay_ms: 50,
            max_attempts: 5,
            ..RetrySchedule::URGENT
        };
        assert_eq!(s.retry.urgent, urgent);
        assert_eq!(s.retry.urgent.max_retry_after_secs, 300);
        // A key of [retry.bulk] keeps the *bulk* defaults for the others.
        assert_eq!(
            s.retry.bulk,
            RetrySchedule {
                max_attempts: 3,
                ..RetrySchedule::BULK
            }
        );
        let defaults = WorkerSettings::default();
        assert_eq!(s.worker.fanout_batch, 100);
        assert_eq!(s.worker.dispatch_batch, defaults.dispatch_batch);
        assert_eq!(s.worker.lease_secs, defaults.lease_secs);
        assert_eq!(s.lanes.ios.concurrency, 100);
        assert_eq!(s.lanes.ios.bulk_share, LaneSetting::default().bulk_share);
        assert_eq!(
            s.lanes.android.concurrency,
            LaneSetting::default().concurrency
        );
        let Some(ProviderSettings::Fcm(fcm)) = &s.apps["b"].android else {
            panic!("apps.b.android is FCM")
        };
        assert_eq!((fcm.rate_per_minute, fcm.connections), (600_000, 2));
        assert_eq!(s.apps["a"].default_locale, "en");
    }

    #[test]
    fn with_no_retry_table_each_priority_has_its_own_schedule() {
        let s = Settings::default();
        assert_eq!(s.retry.urgent, RetrySchedule::URGENT);
        assert_eq!(s.retry.bulk, RetrySchedule::BULK);
    }
}

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
    /// Amazon SNS mobile push, through the operator's platform applications.
    Sns(SnsSettings),
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

/// `[apps.<name>.ios]` or `.android` with `provider = "sns"`: pushes go
/// through Amazon SNS platform applications (which hold the APNs or FCM
/// credentials) instead of straight to APNs or FCM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsSettings {
    /// The platform application for this platform's tokens: `GCM` (FCM)
    /// for Android, `APNS` for iOS production builds, e.g.
    /// `arn:aws:sns:eu-west-1:123456789012:app/APNS/bank-ios`.
    pub platform_application_arn: String,
    /// iOS: the `APNS_SANDBOX` application for development builds' tokens.
    /// Without it, sandbox devices' sends fail saying so.
    pub sandbox_platform_application_arn: Option<String>,
    /// Defaults to the platform application's region.
    pub region: Option<String>,
    /// Another SNS endpoint: a VPC endpoint, or a local SNS for tests
    /// (moto, LocalStack). Default: the region's public endpoint.
    pub endpoint_url: Option<String>,
    /// A named profile of the AWS config files; the standard credential
    /// chain otherwise (environment, profile, web identity, instance role).
    pub profile: Option<String>,
    /// iOS: the default `AWS.SNS.MOBILE.APNS.PUSH_TYPE` (a message may set
    /// its own): alert or background.
    #[serde(default)]
    pub push_type: crate::content::PushType,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

/// What a platform application ARN says: its region and platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformApplicationArn<'a> {
    pub region: &'a str,
    /// `APNS`, `APNS_SANDBOX`, `GCM`, ...
    pub platform: &'a str,
}

/// Parses `arn:<partition>:sns:<region>:<account>:app/<PLATFORM>/<name>`.
pub fn parse_platform_application_arn(arn: &str) -> Option<PlatformApplicationArn<'_>> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("sns"), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let mut res = resource.splitn(3, '/');
    let (Some("app"), Some(platform), Some(name)) = (res.next(), res.next(), res.next()) else {
        return None;
    };
    let ok = !partition.is_empty()
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !platform.is_empty()
        && !name.is_empty();
    ok.then_some(PlatformApplicationArn { region, platform })
}

impl SnsSettings {
    /// The problems of `[apps.<app>.<platform>]` with `provider = "sns"`:
    /// a platform application of the wrong kind would hand every token to
    /// the wrong service, and SNS would disable every endpoint.
    pub(crate) fn problems(&self, app: &str, platform: Platform) -> Vec<String> {
        let key = format!("apps.{app}.{platform}");
        let mut problems = Vec::new();
        let expected: &[(&str, Option<&String>, &str)] = match platform {
            Platform::Android => &[(
                "platform_application_arn",
                Some(&self.platform_application_arn),
                "GCM",
            )],
            Platform::Ios => &[
                (
                    "platform_application_arn",
                    Some(&self.platform_application_arn),
                    "APNS",
                ),
                (
                    "sandbox_platform_application_arn",
                    self.sandbox_platform_application_arn.as_ref(),
                    "APNS_SANDBOX",
                ),
            ],
        };
        for (field, arn, kind) in expected {
            let Some(arn) = arn else { continue };
            match parse_platform_application_arn(arn) {
                None => problems.push(format!(
                    "{key}.{field} is {arn:?}, which is not an SNS platform application ARN; \
                     copy it from the SNS console, e.g. \"arn:aws:sns:eu-west-1:123456789012:app/{kind}/my-app\""
                )),
                Some(p) if p.platform != *kind => problems.push(format!(
                    "{key}.{field} is a {} platform application; {platform} tokens need one of kind {kind}",
                    p.platform
                )),
                Some(_) => {}
            }
        }
        if platform == Platform::Android && self.sandbox_platform_application_arn.is_some() {
            problems.push(format!(
                "{key}.sandbox_platform_application_arn is for iOS development builds; FCM has no sandbox, remove it"
            ));
        }
        if !matches!(
            self.push_type,
            crate::content::PushType::Alert | crate::content::PushType::Background
        ) {
            problems.push(format!(
                "{key}.push_type is {}; through SNS only alert and background are sent (use provider = \"apns\" for the others)",
                self.push_type
            ));
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                problems.push(format!(
                    "{key}.endpoint_url is {url:?}; use a URL like \"https://sns.eu-west-1.amazonaws.com\""
                ));
            }
        }
        problems
    }

    /// The region: set, or the platform application's.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref().or_else(|| {
            parse_platform_application_arn(&self.platform_application_arn).map(|a| a.region)
        })
    }
}

#[cfg(test)]
mod sns_tests {
    use super::*;

    fn sns(arn: &str, sandbox: Option<&str>) -> SnsSettings {
        SnsSettings {
            platform_application_arn: arn.into(),
            sandbox_platform_application_arn: sandbox.map(Into::into),
            region: None,
            endpoint_url: None,
            profile: None,
            push_type: Default::default(),
            connect_timeout_ms: 5_000,
        }
    }

    const APNS: &str = "arn:aws:sns:eu-west-1:123456789012:app/APNS/bank";
    const SANDBOX: &str = "arn:aws:sns:eu-west-1:123456789012:app/APNS_SANDBOX/bank-dev";
    const GCM: &str = "arn:aws:sns:eu-west-1:123456789012:app/GCM/bank";

    #[test]
    fn platform_applications_of_the_right_kind_pass() {
        assert!(sns(APNS, Some(SANDBOX))
            .problems("bank", Platform::Ios)
            .is_empty());
        assert!(sns(GCM, None)
            .problems("bank", Platform::Android)
            .is_empty());
        assert_eq!(sns(APNS, None).region(), Some("eu-west-1"));
    }

    #[test]
    fn a_wrong_platform_application_is_refused_in_plain_words() {
        let p = sns(GCM, Some(APNS)).problems("bank", Platform::Ios);
        assert_eq!(
            p,
            [
                "apps.bank.ios.platform_application_arn is a GCM platform application; ios tokens need one of kind APNS",
                "apps.bank.ios.sandbox_platform_application_arn is a APNS platform application; ios tokens need one of kind APNS_SANDBOX",
            ]
        );
        let p = sns("arn:aws:sns:eu-west-1:1234:app/GCM/bank", None)
            .problems("bank", Platform::Android);
        assert!(
            p[0].contains("is not an SNS platform application ARN"),
            "{p:?}"
        );
        let p = sns(GCM, Some(SANDBOX)).problems("bank", Platform::Android);
        assert!(p[0].contains("FCM has no sandbox"), "{p:?}");
    }
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

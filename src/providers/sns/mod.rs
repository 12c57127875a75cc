//! Amazon SNS mobile push: pushes go through the operator's SNS platform
//! applications (which hold the APNs or FCM credentials) instead of
//! straight to APNs or FCM.
//!
//! Every device has an SNS *platform endpoint* (its token inside a
//! platform application). [`Sns::ensure_endpoint`] creates it idempotently
//! or repairs it (token, enabled, our user data), following AWS's token
//! management advice: create, then read the attributes back, because
//! `CreatePlatformEndpoint` returns an existing endpoint as it is — even
//! disabled. It runs when a device registers and, for a device without a
//! checked endpoint (inserted by SQL, re-registered while SNS was away),
//! before its first publish. The endpoint's ARN is kept on the device;
//! the reaper ([`crate::worker::maintenance`]) deletes the endpoints of
//! removed and dead devices.
//!
//! The SDK's retries are off: the worker's retry policy counts every try.
//! The payload mapping is in [`message`], the answers' meaning in
//! [`classify`].

pub mod classify;
pub mod message;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_sns::config::{BehaviorVersion, Region};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use sqlx::PgPool;

use self::classify::classify;
use super::{Accepted, Message, Provider, ProviderSetupError, SendError};
use crate::config::{ProviderSettings, Settings, SnsSettings};
use crate::content::PushType;
use crate::model::{Environment, Platform};
use crate::store::devices::DeviceRow;

#[derive(Debug, thiserror::Error)]
pub enum SnsSetupError {
    #[error("no region: set region, or use a platform_application_arn like arn:aws:sns:<region>:<account>:app/<PLATFORM>/<name>")]
    NoRegion,
}

/// `[apps.<name>.<platform>]` with `provider = "sns"`.
pub struct Sns {
    client: Client,
    platform: Platform,
    production: String,
    sandbox: Option<String>,
    push_type: PushType,
}

/// The standard AWS credential chain (environment, profile, web identity,
/// container, instance role), built on first use: building it is async
/// and providers are built synchronously at start.
#[derive(Debug)]
struct StandardChain {
    region: Region,
    profile: Option<String>,
    http: aws_sdk_sns::config::SharedHttpClient,
    chain:
        tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
}

impl ProvideCredentials for StandardChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    let config = aws_config::provider_config::ProviderConfig::default()
                        .with_http_client(self.http.clone())
                        .with_region(Some(self.region.clone()));
                    let mut b = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .configure(config);
                    if let Some(p) = &self.profile {
                        b = b.profile_name(p);
                    }
                    b.build().await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

impl Sns {
    pub fn new(s: &SnsSettings, platform: Platform) -> Result<Sns, SnsSetupError> {
        let region = Region::new(s.region().ok_or(SnsSetupError::NoRegion)?.to_owned());
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let credentials = StandardChain {
            region: region.clone(),
            profile: s.profile.clone(),
            http: http.clone(),
            chain: tokio::sync::OnceCell::new(),
        };
        let mut config = aws_sdk_sns::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region)
            .http_client(http)
            .credentials_provider(credentials)
            // One place counts retries: the worker's policy.
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_sns::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(s.connect_timeout_ms))
                    .build(),
            );
        if let Some(url) = &s.endpoint_url {
            config = config.endpoint_url(url);
        }
        Ok(Sns {
            client: Client::from_conf(config.build()),
            platform,
            production: s.platform_application_arn.clone(),
            sandbox: s.sandbox_platform_application_arn.clone(),
            push_type: s.push_type,
        })
    }

    /// The platform application of a device's tokens.
    fn application(&self, environment: Environment) -> Result<&str, SendError> {
        match (self.platform, environment) {
            (Platform::Ios, Environment::Sandbox) => self.sandbox.as_deref().ok_or_else(|| {
                SendError::Permanent {
                    status: None,
                    reason: "the device is a development build (environment sandbox) and no sandbox_platform_application_arn is configured for SNS; add the app's APNS_SANDBOX platform application".into(),
                }
            }),
            _ => Ok(&self.production),
        }
    }

    /// Makes sure the device has an enabled endpoint holding its token and
    /// returns its ARN.
    #[tracing::instrument(skip_all, fields(device_id = device.id))]
    pub async fn ensure_endpoint(&self, device: &Device<'_>) -> Result<String, SendError> {
        let user_data = device.user_data();
        let application = self.application(device.environment)?;
        match device.known {
            Some(arn) if !belongs_to(arn, application) => {
                // The device moved between sandbox and production, or the
                // ARN came from another application: that endpoint goes.
                if let Err(e) = self.delete_endpoint(arn).await {
                    tracing::warn!(endpoint = arn, error = %e,
                        "could not delete the device's endpoint of another platform application");
                }
            }
            Some(arn) => match self.check(arn, device, &user_data).await {
                Ok(Found::Yes) => return Ok(arn.to_owned()),
                Ok(Found::No) => {}
                // The endpoint refuses the token (SNS holds it in another
                // endpoint of the application): make, or take over, that.
                Err(SendError::Permanent { reason, .. }) => {
                    tracing::warn!(endpoint = arn, %reason,
                        "the device's endpoint cannot be repaired; making another");
                }
                Err(e) => return Err(e),
            },
            None => {}
        }
        let created = self
            .client
            .create_platform_endpoint()
            .platform_application_arn(application)
            .token(device.token)
            .custom_user_data(&user_data)
            .send()
            .await;
        let arn = match created {
            Ok(out) => out.endpoint_arn.unwrap_or_default(),
            Err(e) => match existing_endpoint(&e) {
                // Someone (another processor, an earlier pushrelay) made
                // the endpoint with other attributes: take it over.
                Some(arn) => arn,
                None => return Err(classify(&e, device.token)),
            },
        };
        let gone = |what: &str| SendError::Transient {
            status: None,
            reason: format!("SNS made an endpoint but {what}"),
            retry_after: None,
        };
        if arn.is_empty() {
            return Err(gone("named no ARN"));
        }
        // An existing endpoint comes back as it is, disabled or not.
        match self.check(&arn, device, &user_data).await? {
            Found::Yes => Ok(arn),
            Found::No => Err(gone("it was gone right after")),
        }
    }

    /// Reads an endpoint's attributes and repairs them: our token, enabled,
    /// our user data. `Found::No` when the endpoint no longer exists.
    async fn check(
        &self,
        arn: &str,
        device: &Device<'_>,
        user_data: &str,
    ) -> Result<Found, SendError> {
        let attrs = match self
            .client
            .get_endpoint_attributes()
            .endpoint_arn(arn)
            .send()
            .await
        {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                return Ok(Found::No)
            }
            Err(e) => return Err(classify(&e, device.token)),
        };
        let get = |k: &str| attrs.get(k).map(String::as_str);
        if get("Token") == Some(device.token)
            && get("Enabled") == Some("true")
            && get("CustomUserData") == Some(user_data)
        {
            return Ok(Found::Yes);
        }
        self.client
            .set_endpoint_attributes()
            .endpoint_arn(arn)
            .attributes("Token", device.token)
            .attributes("Enabled", "true")
            .attributes("CustomUserData", user_data)
            .send()
            .await
            .map_err(|e| classify(&e, device.token))?;
        tracing::info!(
            endpoint = arn,
            "repaired the SNS endpoint (token, enabled, user data)"
        );
        Ok(Found::Yes)
    }

    /// Deletes an endpoint; deleting one that is already gone succeeds.
    pub async fn delete_endpoint(&self, arn: &str) -> Result<(), SendError> {
        self.client
            .delete_endpoint()
            .endpoint_arn(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, ""))
    }

    async fn publish(
        &self,
        arn: &str,
        p: &message::Publish,
        token: &str,
    ) -> Result<String, PublishError> {
        let mut req = self
            .client
            .publish()
            .target_arn(arn)
            .message_structure("json")
            .message(&p.message);
        for (name, value) in &p.attributes {
            req = req.message_attributes(
                *name,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .expect("data type is set"),
            );
        }
        match req.send().await {
            Ok(out) => Ok(out.message_id.unwrap_or_default()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Err(PublishError::NoEndpoint)
            }
            Err(e) => Err(PublishError::Failed(classify(&e, token))),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Found {
    Yes,
    No,
}

enum PublishError {
    /// The endpoint was deleted outside pushrelay.
    NoEndpoint,
    Failed(SendError),
}

/// What endpoint management needs of a device.
#[derive(Debug, Clone, Copy)]
pub struct Device<'a> {
    pub id: i64,
    pub token: &'a str,
    pub environment: Environment,
    /// The endpoint ARN stored on the device, if any.
    pub known: Option<&'a str>,
}

impl Device<'_> {
    /// The endpoint's CustomUserData: which device it belongs to, for
    /// whoever looks at it in the SNS console. No user id: SNS is outside
    /// pushrelay's erasure.
    fn user_data(&self) -> String {
        format!("pushrelay device {}", self.id)
    }
}

/// Whether an endpoint is one of a platform application's:
/// `…:endpoint/APNS/bank/<id>` of `…:app/APNS/bank`.
fn belongs_to(endpoint: &str, application: &str) -> bool {
    endpoint
        .rsplit_once('/')
        .is_some_and(|(head, _)| head.replacen(":endpoint/", ":app/", 1) == application)
}

/// The ARN in SNS's "Endpoint <arn> already exists with the same Token,
/// but different attributes." answer to `CreatePlatformEndpoint`.
fn existing_endpoint<E: aws_sdk_sns::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_sns::error::SdkError<E, R>,
) -> Option<String> {
    use aws_sdk_sns::error::ProvideErrorMetadata as _;
    if e.code() != Some("InvalidParameter") {
        return None;
    }
    let m = e.message()?;
    if !m.contains("already exists with the same Token") {
        return None;
    }
    let start = m.find("arn:")?;
    let arn = m[start..].split_whitespace().next()?;
    Some(arn.to_owned())
}

#[async_trait]
impl Provider for Sns {
    fn name(&self) -> &'static str {
        "sns"
    }

    async fn send(&self, msg: &Message<'_>) -> Result<Accepted, SendError> {
        let publish = message::publish(msg, self.push_type)?;
        let device = Device {
            id: msg.device_id,
            token: msg.token,
            environment: msg.environment,
            known: msg.endpoint_arn,
        };
        let (arn, repaired) = match msg.endpoint_arn {
            Some(arn) if !msg.endpoint_stale => (arn.to_owned(), false),
            _ => (self.ensure_endpoint(&device).await?, true),
        };
        let (arn, repaired, id) = match self.publish(&arn, &publish, msg.token).await {
            Ok(id) => (arn, repaired, id),
            Err(PublishError::Failed(e)) => return Err(e),
            Err(PublishError::NoEndpoint) => {
                // Deleted behind our back (the SNS console, a cleanup
                // script): make a new one and publish once more.
                let arn = self
                    .ensure_endpoint(&Device {
                        known: None,
                        ..device
                    })
                    .await?;
                match self.publish(&arn, &publish, msg.token).await {
                    Ok(id) => (arn, true, id),
                    Err(PublishError::Failed(e)) => return Err(e),
                    Err(PublishError::NoEndpoint) => return Err(SendError::Transient {
                        status: Some(404),
                        reason:
                            "NotFound: the SNS endpoint disappeared again right after it was made"
                                .into(),
                        retry_after: None,
                    }),
                }
            }
        };
        Ok(Accepted {
            provider_message_id: Some(id),
            status: Some(200),
            endpoint_arn: repaired.then_some(arn),
        })
    }
}

/// The SNS provider of each app and platform routed through SNS.
#[derive(Clone, Default)]
pub struct Endpoints {
    routes: HashMap<String, [Option<Arc<Sns>>; 2]>,
}

/// How long a registration waits for SNS before leaving the endpoint to
/// the device's first send.
const REGISTRATION_WAIT: Duration = Duration::from_secs(5);

impl Endpoints {
    /// The SNS routes of the configured apps.
    pub fn from_settings(settings: &Settings) -> Result<Endpoints, ProviderSetupError> {
        let mut routes = Endpoints::default();
        for (app, app_settings) in &settings.apps {
            for &platform in Platform::ALL {
                if let Some(ProviderSettings::Sns(s)) = app_settings.provider(platform) {
                    let sns = Sns::new(s, platform).map_err(|source| ProviderSetupError::Sns {
                        app: app.clone(),
                        platform,
                        source,
                    })?;
                    routes.routes.entry(app.clone()).or_default()[platform.index()] =
                        Some(Arc::new(sns));
                }
            }
        }
        Ok(routes)
    }

    /// The routes as `app/platform`, as the store names them.
    pub fn route_names(&self) -> Vec<String> {
        self.routes
            .iter()
            .flat_map(|(app, p)| {
                Platform::ALL
                    .iter()
                    .filter(|pl| p[pl.index()].is_some())
                    .map(move |pl| format!("{app}/{pl}"))
            })
            .collect()
    }

    /// After a registration: makes (or checks) the device's endpoint and
    /// stores it on the device, returning its ARN. A device of an app not
    /// routed through SNS gets `None`. SNS being away does not fail the
    /// registration: the device's first send makes the endpoint then.
    pub async fn after_registration(&self, pool: &PgPool, d: &DeviceRow) -> Option<String> {
        let sns = self.get(&d.app, d.platform)?;
        let device = Device {
            id: d.id,
            token: &d.token,
            environment: d.environment,
            known: d.sns_endpoint_arn.as_deref(),
        };
        let arn = match tokio::time::timeout(REGISTRATION_WAIT, sns.ensure_endpoint(&device)).await
        {
            Ok(Ok(arn)) => arn,
            Ok(Err(e)) => {
                tracing::warn!(device_id = d.id, app = %d.app, error = %e,
                    "could not make the device's SNS endpoint; its first send tries again");
                return d.sns_endpoint_arn.clone();
            }
            Err(_) => {
                tracing::warn!(device_id = d.id, app = %d.app,
                    "SNS did not answer within {REGISTRATION_WAIT:?}; the device's first send makes its endpoint");
                return d.sns_endpoint_arn.clone();
            }
        };
        if let Err(e) = crate::store::sns::set_endpoint(pool, d.id, &d.token, &arn).await {
            tracing::warn!(device_id = d.id, error = %e,
                "could not store the device's SNS endpoint; its first send checks it again");
        }
        Some(arn)
    }

    pub fn get(&self, app: &str, platform: Platform) -> Option<&Arc<Sns>> {
        self.routes.get(app)?[platform.index()].as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sns::error::{ErrorMetadata, SdkError};

    #[test]
    fn endpoints_belong_to_their_application() {
        let app = "arn:aws:sns:eu-west-1:123456789012:app/APNS/bank";
        assert!(belongs_to(
            "arn:aws:sns:eu-west-1:123456789012:endpoint/APNS/bank/1f2e",
            app
        ));
        assert!(!belongs_to(
            "arn:aws:sns:eu-west-1:123456789012:endpoint/APNS_SANDBOX/bank/1f2e",
            app
        ));
        assert!(!belongs_to(
            "arn:aws:sns:eu-west-1:123456789012:endpoint/APNS/bank2/1f2e",
            app
        ));
        assert!(!belongs_to("not-an-arn", app));
    }

    #[test]
    fn the_existing_endpoint_is_read_from_the_answer() {
        let arn = "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/bank/27ddc0d0";
        let meta = ErrorMetadata::builder()
            .code("InvalidParameter")
            .message(format!("Invalid parameter: Token Reason: Endpoint {arn} already exists with the same Token, but different attributes."))
            .build();
        let err: SdkError<ErrorMetadata, ()> = SdkError::service_error(meta, ());
        assert_eq!(existing_endpoint(&err).as_deref(), Some(arn));
        let other = ErrorMetadata::builder()
            .code("InvalidParameter")
            .message("Invalid parameter: Token")
            .build();
        let err: SdkError<ErrorMetadata, ()> = SdkError::service_error(other, ());
        assert_eq!(existing_endpoint(&err), None);
    }
}

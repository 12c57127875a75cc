//! A real local Amazon SNS for the SNS tests: moto in server mode
//! (`.ci/moto-venv` installs it from PyPI into a virtual environment), one
//! server per test binary on a free loopback port. Tests stay apart by
//! their own platform applications. The server ends with the test process
//! (PR_SET_PDEATHSIG).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
use pushrelay::config::{ProviderSettings, Settings, SnsSettings};

pub const REGION: &str = "eu-west-1";

/// A running moto server.
pub struct Moto {
    pub url: String,
    _child: Child,
}

/// The test binary's shared moto server.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| start(&[]))
}

/// A moto server of its own that checks credentials after the first
/// `free` requests (moto's INITIAL_NO_AUTH_ACTION_COUNT): pushrelay's
/// requests, signed with keys moto's IAM does not know, are refused.
pub fn moto_checking_credentials(free: u32) -> Moto {
    start(&[("INITIAL_NO_AUTH_ACTION_COUNT", &free.to_string())])
}

fn moto_server() -> String {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        // pushrelay's SNS clients take the standard credential chain:
        // give them moto's test keys and keep them off the machine's own
        // AWS files and the instance metadata service. Set once, before
        // any client exists.
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ] {
            std::env::set_var(k, v);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/moto-venv");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("run .ci/moto-venv");
        assert!(
            out.status.success(),
            ".ci/moto-venv could not install moto (python3 with venv and PyPI needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
    .clone()
}

fn start(env: &[(&str, &str)]) -> Moto {
    let bin = moto_server();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let watchdog = format!(
        "\"$0\" -H 127.0.0.1 -p {port} & m=$!; trap 'kill $m' EXIT TERM; \
         while kill -0 {test} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done",
        test = std::process::id()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &watchdog, &bin])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Moto {
        url: format!("http://127.0.0.1:{port}"),
        _child: child,
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // The watchdog's trap stops the server.
        unsafe { libc::kill(self._child.id() as i32, libc::SIGTERM) };
        let _ = self._child.wait();
    }
}

impl Moto {
    /// The test's own SNS client (not pushrelay's): sets up platform
    /// applications and looks at what SNS holds.
    pub fn client(&self) -> aws_sdk_sns::Client {
        let config = aws_sdk_sns::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .build();
        aws_sdk_sns::Client::from_conf(config)
    }

    /// A new platform application (`APNS`, `APNS_SANDBOX` or `GCM`) with a
    /// name unique to the test.
    pub async fn application(&self, platform: &str) -> String {
        let name = format!("t-{}", uuid::Uuid::new_v4().simple());
        self.client()
            .create_platform_application()
            .name(name)
            .platform(platform)
            .attributes("PlatformCredential", "test-credential")
            .attributes("PlatformPrincipal", "test-principal")
            .send()
            .await
            .expect("create platform application")
            .platform_application_arn
            .unwrap()
    }

    /// An endpoint made outside pushrelay (by the processor it replaces),
    /// with that processor's user data, if any.
    pub async fn foreign_endpoint(
        &self,
        application: &str,
        token: &str,
        user_data: Option<&str>,
    ) -> String {
        self.client()
            .create_platform_endpoint()
            .platform_application_arn(application)
            .token(token)
            .set_custom_user_data(user_data.map(Into::into))
            .send()
            .await
            .expect("create platform endpoint")
            .endpoint_arn
            .unwrap()
    }

    /// The endpoints of a platform application: (ARN, attributes).
    pub async fn endpoints(
        &self,
        application: &str,
    ) -> Vec<(String, std::collections::HashMap<String, String>)> {
        self.client()
            .list_endpoints_by_platform_application()
            .platform_application_arn(application)
            .send()
            .await
            .expect("list endpoints")
            .endpoints
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.endpoint_arn.unwrap(), e.attributes.unwrap_or_default()))
            .collect()
    }

    /// An endpoint's attributes, `None` when it does not exist.
    pub async fn attributes(&self, arn: &str) -> Option<std::collections::HashMap<String, String>> {
        match self
            .client()
            .get_endpoint_attributes()
            .endpoint_arn(arn)
            .send()
            .await
        {
            Ok(out) => Some(out.attributes.unwrap_or_default()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                None
            }
            Err(e) => panic!("get endpoint attributes: {e:?}"),
        }
    }

    pub async fn set_enabled(&self, arn: &str, enabled: bool) {
        self.client()
            .set_endpoint_attributes()
            .endpoint_arn(arn)
            .attributes("Enabled", enabled.to_string())
            .send()
            .await
            .expect("set endpoint attributes");
    }

    /// The messages SNS received for an endpoint, oldest first, as
    /// (message id, message) — from moto's record of its state.
    pub async fn messages(&self, arn: &str) -> Vec<(String, String)> {
        let data: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", self.url))
            .await
            .expect("moto state")
            .json()
            .await
            .expect("moto state is JSON");
        let endpoints = data["sns"]["PlatformEndpoint"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        endpoints
            .iter()
            .filter(|e| e["arn"] == arn)
            .flat_map(|e| {
                e["messages"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(id, msg)| {
                                (id.clone(), msg.as_str().unwrap_or_default().to_owned())
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// SNS routing for app `app` of `settings`: iOS through `ios` (and
/// `ios_sandbox`), Android through `android`, all at `moto`.
pub fn route(
    settings: &mut Settings,
    app: &str,
    moto: &Moto,
    ios: &str,
    ios_sandbox: &str,
    android: &str,
) {
    let sns = |arn: &str, sandbox: Option<&str>| {
        Some(ProviderSettings::Sns(SnsSettings {
            platform_application_arn: arn.into(),
            sandbox_platform_application_arn: sandbox.map(Into::into),
            region: None,
            endpoint_url: Some(moto.url.clone()),
            profile: None,
            push_type: Default::default(),
            connect_timeout_ms: 2_000,
        }))
    };
    let a = settings.apps.get_mut(app).expect("a configured app");
    a.ios = sns(ios, Some(ios_sandbox));
    a.android = sns(android, None);
}

//! A headless Chromium driven over WebDriver for the console's browser
//! tests: Debian's `chromedriver` on a free loopback port, one fresh
//! profile per browser, and screenshots written under the target directory
//! so a reviewer can look at every page the test walked through.
//!
//! A machine without Chromium fails the test with the command that
//! installs it (`.ci/run` does): a browser test that quietly passes
//! without a browser would prove nothing.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL: &str = "install them with `apt-get install chromium chromium-driver` \
                       (.ci/run does when they are missing)";

/// The desktop window the screenshots are taken at.
pub const DESKTOP: (u32, u32) = (1280, 900);
/// A phone-sized window (the console must be usable at 375 px).
pub const MOBILE: (u32, u32) = (375, 812);

/// One chromedriver process with one browser session. Dropping it kills
/// chromedriver and the Chromium it started (their process group), so a
/// failed test leaves no browser behind.
pub struct Browser {
    pub client: Client,
    /// chromedriver's base URL, for the Chrome-specific CDP endpoint.
    base: String,
    /// Whether [`Browser::mobile`] emulation is on (a screenshot restores
    /// it).
    mobile: AtomicBool,
    _driver: Driver,
}

/// chromedriver and the browser profile; dropped (killed, removed) even
/// when starting the session panics half-way.
struct Driver {
    child: Child,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile at
    /// the desktop size. Panics, naming the packages, when either binary
    /// is missing.
    pub async fn start() -> Browser {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(binary).exists(),
                "the console's browser tests need {binary}, which is missing: {INSTALL}"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Drop kills chromedriver and the
            // browsers it started with one signal.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}; {INSTALL}"));
        let profile = std::env::temp_dir().join(format!(
            "pushrelay-chromium-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut driver = Driver { child, profile };
        let profile = driver.profile.clone();
        let base = format!("http://127.0.0.1:{port}");
        wait_until_ready(&mut driver.child, &base).await;
        std::fs::create_dir_all(&profile).expect("create the browser profile directory");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    // The machine has no outside network: without these
                    // Chromium keeps retrying its own background fetches.
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ],
            }),
        );
        // chromedriver listens on loopback: plain HTTP, no TLS stack.
        let connected = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&base)
            .await;
        let client = connected
            .unwrap_or_else(|e| panic!("chromedriver could not start {CHROMIUM}: {e}; {INSTALL}"));
        let browser = Browser {
            client,
            base,
            mobile: AtomicBool::new(false),
            _driver: driver,
        };
        browser.resize(DESKTOP).await;
        browser
    }

    /// Sets the window to `(width, height)` CSS pixels of page: the
    /// browser's outer size is adjusted by whatever frame it adds.
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("set the window size");
        let frame = self
            .client
            .execute(
                "return [window.outerWidth - window.innerWidth, \
                         window.outerHeight - window.innerHeight]",
                vec![],
            )
            .await
            .expect("read the window frame");
        let (dw, dh) = (
            frame[0].as_u64().unwrap_or(0) as u32,
            frame[1].as_u64().unwrap_or(0) as u32,
        );
        if dw > 0 || dh > 0 {
            self.client
                .set_window_size(width + dw, height + dh)
                .await
                .expect("set the window size");
        }
    }

    /// A phone: a 375-px-wide viewport with mobile emulation. Chromium
    /// will not make a window narrower than 500 px, so this asks it
    /// through the DevTools protocol instead of `set_window_size`; it
    /// lasts across navigations until [`Browser::desktop`].
    pub async fn mobile(&self) {
        self.emulate(MOBILE, true).await;
        self.mobile.store(true, Ordering::Relaxed);
        let width = self
            .client
            .execute("return window.innerWidth", vec![])
            .await
            .expect("read the viewport width");
        assert_eq!(width, MOBILE.0, "the emulated viewport is not 375 px wide");
    }

    /// Back to the desktop window.
    pub async fn desktop(&self) {
        self.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
            .await;
        self.mobile.store(false, Ordering::Relaxed);
        self.resize(DESKTOP).await;
    }

    /// A viewport of `(width, height)` CSS pixels, whatever the window.
    async fn emulate(&self, (width, height): (u32, u32), mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// Runs a DevTools protocol command through chromedriver's
    /// `goog/cdp/execute` endpoint; returns its result.
    pub async fn cdp(&self, cmd: &str, params: serde_json::Value) -> serde_json::Value {
        let session = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a WebDriver session");
        let res = reqwest::Client::new()
            .post(format!("{}/session/{session}/goog/cdp/execute", self.base))
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"));
        let status = res.status();
        let body: serde_json::Value = res.json().await.expect("CDP answer");
        assert!(status.is_success(), "CDP {cmd} failed: {status} {body}");
        body["value"].clone()
    }

    /// Opens `url` (WebDriver returns once the page has loaded).
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The page's path (and query), e.g. `/console/sign-in?next=%2F…`.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The visible text of the first element matching `css`, waiting a
    /// while for it to appear (a click's navigation may still be loading).
    pub async fn text(&self, css: &str) -> String {
        let found = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element.text().await.expect("element text"),
            Err(e) => panic!("no `{css}` on {}: {e}", self.path().await),
        }
    }

    /// The visible text of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for element in self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find elements")
        {
            out.push(element.text().await.expect("element text"));
        }
        out
    }

    /// Types `text` into the field matching `css` (cleared first).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = match self.client.find(Locator::Css(css)).await {
            Ok(field) => field,
            Err(e) => panic!("no `{css}` on {}: {e}", self.path().await),
        };
        field.clear().await.expect("clear field");
        field.send_keys(text).await.expect("type into field");
    }

    /// Clicks the element matching `css` and waits for the page it leads
    /// to to finish loading.
    pub async fn click(&self, css: &str) {
        let before = self.path().await;
        let element = match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no `{css}` on {before}: {e}"),
        };
        // The old document carries a mark the new one will not: the click
        // may return before the navigation it starts has even begun, and
        // a form may post back to the same URL.
        self.client
            .execute("window.__pushrelayOldPage = true", vec![])
            .await
            .expect("mark the page");
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}` on {before}: {e}"));
        self.new_page_loaded(&before).await;
    }

    /// Waits until the marked page is gone and the new one is complete.
    async fn new_page_loaded(&self, before: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let state = self
                .client
                .execute(
                    "return window.__pushrelayOldPage ? 'old' : document.readyState",
                    vec![],
                )
                .await;
            if matches!(state, Ok(ref s) if s == "complete") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no new page loaded after a click on {before} ({state:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Presses Enter in the focused element (submits its form) and waits
    /// for the page that leads to.
    pub async fn press_enter(&self) {
        let before = self.path().await;
        self.client
            .execute("window.__pushrelayOldPage = true", vec![])
            .await
            .expect("mark the page");
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .send_keys(&Key::Enter.to_string())
            .await
            .expect("press Enter");
        self.new_page_loaded(&before).await;
    }

    /// Presses `key` wherever the focus is (a Tab moves it), without
    /// waiting for any navigation.
    pub async fn press(&self, key: Key) {
        let key = char::from(key);
        let typing = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client
            .perform_actions(typing)
            .await
            .expect("press a key");
    }

    /// The visible text of the focused element.
    pub async fn focused_text(&self) -> String {
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .text()
            .await
            .expect("element text")
    }

    /// The `id` of the focused element (empty when it has none).
    pub async fn focused_id(&self) -> String {
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .attr("id")
            .await
            .expect("read id")
            .unwrap_or_default()
    }

    /// The form fields on the page that have no label a screen reader
    /// could announce (neither `<label for>`/wrapping label nor
    /// `aria-label`), as HTML.
    pub async fn unlabelled_fields(&self) -> Vec<String> {
        let found = self
            .client
            .execute(
                "return [...document.querySelectorAll('input, select, textarea')]
                    .filter(e => e.type !== 'hidden')
                    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                    .map(e => e.outerHTML)",
                vec![],
            )
            .await
            .expect("list the form fields");
        serde_json::from_value(found).expect("a list of strings")
    }

    /// How many CSS pixels the page is wider than the window (0: nothing
    /// to scroll sideways; wide tables scroll in their own box).
    pub async fn overflow_x(&self) -> i64 {
        self.client
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth",
                vec![],
            )
            .await
            .expect("measure the page")
            .as_i64()
            .expect("a number")
    }

    /// Writes the whole page (not just what the window shows) as PNG to
    /// `<target>/console-screenshots/<name>.png`; returns the path. The
    /// viewport is stretched to the page's height for the shot (so the
    /// page is laid out as on a tall screen, without a scrollbar), then
    /// put back.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let mobile = self.mobile.load(Ordering::Relaxed);
        let (width, height) = if mobile {
            MOBILE
        } else {
            let size = self
                .client
                .execute("return [window.innerWidth, window.innerHeight]", vec![])
                .await
                .expect("read the viewport size");
            (
                size[0].as_u64().expect("width") as u32,
                size[1].as_u64().expect("height") as u32,
            )
        };
        self.emulate((width, height), mobile).await;
        let page_height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .expect("read the page height")
            .as_u64()
            .expect("a height") as u32;
        // Bounded so a runaway page cannot ask for a gigantic bitmap.
        self.emulate((width, page_height.clamp(height, 8000)), mobile)
            .await;
        let shot = self
            .cdp("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        if mobile {
            self.emulate(MOBILE, true).await;
        } else {
            self.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
                .await;
        }
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the browser session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// `<target>/console-screenshots`: the build's target directory
/// (CARGO_TARGET_DIR when set, else the crate's `target/`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots")
}

/// A loopback port nobody listens on right now (chromedriver takes a port
/// number, not a socket, so there is a small window for a clash).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}

/// Polls chromedriver's `/status` until it answers ready.
async fn wait_until_ready(driver: &mut Child, base: &str) {
    let http = reqwest::Client::new();
    // Only keeps a broken install from hanging the test; not a timing
    // assertion.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            panic!("{CHROMEDRIVER} exited at start ({status}); {INSTALL}");
        }
        if let Ok(res) = http.get(format!("{base}/status")).send().await {
            if let Ok(body) = res.json::<serde_json::Value>().await {
                if body["value"]["ready"] == true {
                    return;
                }
            }
        }
        if Instant::now() > deadline {
            panic!("{CHROMEDRIVER} did not answer on {base}/status within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills chromedriver's process group (chromedriver and its Chromium) and
/// reaps chromedriver.
fn kill_group(driver: &mut Child) {
    let pgid = driver.id() as libc::pid_t;
    // SAFETY: a plain kill(2) of the group this harness created.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = driver.wait();
}

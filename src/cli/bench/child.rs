//! The bench's child processes: `pushrelay` binaries run with a config file
//! the bench wrote — `migrate`, the daemons and the mock providers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// `<bin> --config <config>`, killed if dropped, and without the environment
/// overrides (`DATABASE_URL`, `PUSHRELAY_*`) that would change what the
/// config file says.
fn pushrelay(bin: &Path, config: &Path) -> Command {
    let mut command = Command::new(bin);
    command.arg("--config").arg(config).kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key == "DATABASE_URL" || key.to_string_lossy().starts_with("PUSHRELAY") {
            command.env_remove(key);
        }
    }
    command
}

/// A log file for a child's stdout or stderr.
fn log_file(path: &Path) -> anyhow::Result<Stdio> {
    let file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(file.into())
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Runs `<bin> migrate` on the config's database.
pub async fn migrate(bin: &Path, config: &Path) -> anyhow::Result<()> {
    let out = pushrelay(bin, config)
        .arg("migrate")
        .output()
        .await
        .with_context(|| format!("running {}", bin.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} migrate failed ({}):\n{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A `pushrelay run` process.
pub struct Daemon {
    child: Child,
    pub pid: u32,
    log: PathBuf,
}

impl Daemon {
    /// Starts `<bin> run`, its stdout and stderr going to `log`.
    pub fn spawn(bin: &Path, config: &Path, log: PathBuf) -> anyhow::Result<Daemon> {
        let child = pushrelay(bin, config)
            .arg("run")
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?)
            .spawn()
            .with_context(|| format!("starting {} run", bin.display()))?;
        let pid = child.id().context("the daemon exited at once")?;
        Ok(Daemon { child, pid, log })
    }

    /// Fails, with the end of its log, if the daemon has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "daemon {} exited early ({status}); end of {}:\n{}",
                self.pid,
                self.log.display(),
                tail(&self.log)
            ),
        }
    }

    /// SIGTERM (a graceful stop), then waits for the exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        signal(self.pid, libc::SIGTERM).context("signalling a daemon")?;
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .with_context(|| {
                format!("daemon {} did not stop within 60 s of SIGTERM", self.pid)
            })??;
        anyhow::ensure!(
            status.success(),
            "daemon {} stopped with {status}; end of {}:\n{}",
            self.pid,
            self.log.display(),
            tail(&self.log)
        );
        Ok(())
    }
}

/// Sends `sig` to a child process not yet waited for.
fn signal(pid: u32, sig: libc::c_int) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(pid)?;
    // SAFETY: a plain syscall. The child has not been waited for, so its
    // pid cannot belong to another process yet.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// A `pushrelay mock-providers` process, with its stdout still open for the
/// statistics it prints when stopped.
pub struct Mock {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Mock {
    /// SIGINT, then the statistics the mock prints as it stops.
    pub async fn stop(mut self) -> anyhow::Result<serde_json::Value> {
        let pid = self.child.id().context("the mock exited early")?;
        signal(pid, libc::SIGINT).context("signalling the mock")?;
        let read = async {
            let mut printed = String::new();
            while let Some(line) = self.stdout.next_line().await? {
                printed.push_str(&line);
            }
            self.child.wait().await?;
            anyhow::Ok(printed)
        };
        let printed = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .context("the mock did not stop within 60 s of SIGINT")??;
        serde_json::from_str(&printed)
            .with_context(|| format!("the mock's statistics are not JSON: {printed:?}"))
    }
}

/// Starts `pushrelay mock-providers` (this binary) on a free loopback port,
/// writing its credentials to `dir`, counting duplicates if asked. Returns
/// the process and the `[apps.demo]` table it prints to reach it.
pub async fn start_mock(
    config: &Path,
    dir: &Path,
    log: &Path,
    count_duplicates: bool,
) -> anyhow::Result<(Mock, serde_json::Value)> {
    let mut child = pushrelay(&std::env::current_exe()?, config);
    child.args(["mock-providers", "--no-record", "--listen", "127.0.0.1:0"]);
    if count_duplicates {
        child.arg("--count-duplicates");
    }
    let mut child = child
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(log_file(log)?)
        .spawn()
        .context("starting the mock providers")?;
    let mut stdout = BufReader::new(child.stdout.take().context("the mock's stdout")?).lines();
    let printed = tokio::time::timeout(Duration::from_secs(120), read_until_ctrl_c(&mut stdout))
        .await
        .context("the mock providers did not start within 2 minutes")??
        .with_context(|| {
            format!(
                "the mock providers exited before they were ready; end of {}:\n{}",
                log.display(),
                tail(log)
            )
        })?;
    let snippet = printed
        .find("[apps.demo.ios]")
        .map(|start| &printed[start..])
        .with_context(|| format!("the mock providers printed no config snippet:\n{printed}"))?;
    let mut parsed: serde_json::Value =
        toml::from_str(snippet).context("parsing the mock's config snippet")?;
    let app = parsed
        .pointer_mut("/apps/demo")
        .map(serde_json::Value::take)
        .filter(serde_json::Value::is_object)
        .context("the mock's config snippet has no [apps.demo]")?;
    Ok((Mock { child, stdout }, app))
}

/// What the mock prints before its `Ctrl-C …` line; `None` if it exits first.
async fn read_until_ctrl_c(
    lines: &mut Lines<BufReader<ChildStdout>>,
) -> std::io::Result<Option<String>> {
    let mut printed = String::new();
    while let Some(line) = lines.next_line().await? {
        if line.starts_with("Ctrl-C") {
            return Ok(Some(printed));
        }
        printed.push_str(&line);
        printed.push('\n');
    }
    Ok(None)
}

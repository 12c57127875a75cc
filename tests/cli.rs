//! The binary as an operator meets it: help on every verb, plain-words
//! configuration errors, and the mock providers command.

use std::process::Command;

fn pushrelay() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pushrelay"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("DATABASE_URL");
    c
}

#[test]
fn every_verb_has_help() {
    for verb in [
        vec!["migrate"],
        vec!["run"],
        vec!["send"],
        vec!["status"],
        vec!["devices", "add"],
        vec!["devices", "list"],
        vec!["devices", "remove"],
        vec!["keys", "create"],
        vec!["keys", "list"],
        vec!["keys", "revoke"],
        vec!["campaigns", "create"],
        vec!["campaigns", "list"],
        vec!["campaigns", "show"],
        vec!["campaigns", "preview"],
        vec!["campaigns", "pause"],
        vec!["campaigns", "resume"],
        vec!["campaigns", "cancel"],
        vec!["check-config"],
        vec!["demo"],
        vec!["bench"],
        #[cfg(feature = "mock")]
        vec!["mock-providers"],
    ] {
        let out = pushrelay().args(&verb).arg("--help").output().unwrap();
        assert!(out.status.success(), "{verb:?} --help failed");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: pushrelay"),
            "{verb:?}"
        );
    }
}

#[test]
fn check_config_explains_problems_in_plain_words() {
    let ok = pushrelay().arg("check-config").output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("configuration OK"));

    let dir = std::env::temp_dir().join(format!("pushrelay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[worker]\nlease_secs = 0\n[lanes.ios]\nbulk_share = 1.5\n[retry.urgent]\nbase_ms = 10\ncap_ms = 5\nmax_attempts = 0\nmax_retry_after_secs = 1\n\
         [apps.Bank]\nios = { provider = \"simulator\" }\n",
    )
    .unwrap();
    let out = pushrelay()
        .arg("--config")
        .arg(&bad)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "worker.lease_secs must be greater than 0",
        "lanes.ios.bulk_share is 1.5",
        "retry.urgent: cap_ms (5) is smaller than base_ms (10)",
        "retry.urgent: max_attempts must be at least 1",
        "app name \"Bank\" may only use lowercase letters",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }

    // The environment overrides the file, and a wrong type names the key.
    let out = pushrelay()
        .env("PUSHRELAY__WORKER__LEASE_SECS", "soon")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker.lease_secs"));

    let out = pushrelay()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach PostgreSQL at 127.0.0.1:1/nowhere")
            && err.contains("DATABASE_URL="),
        "{err}"
    );
}

#[cfg(feature = "mock")]
#[test]
fn mock_providers_writes_working_credentials_and_a_config_snippet() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let refused = pushrelay()
        .args(["mock-providers", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("listen only on loopback"));

    let dir = std::env::temp_dir().join(format!("pushrelay-mock-cli-{}", std::process::id()));
    let mut child = pushrelay()
        .args(["mock-providers", "--listen", "127.0.0.1:0", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        printed.contains("[apps.demo.ios]") && printed.contains("provider = \"fcm\""),
        "{printed}"
    );
    // The snippet is valid configuration whose files exist and parse.
    let snippet =
        &printed[printed.find("[apps.demo.ios]").unwrap()..printed.find("Ctrl-C").unwrap()];
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[templates]\ndir = {:?}\n{snippet}",
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates")
        ),
    )
    .unwrap();
    let out = pushrelay()
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! The console's pages: minijinja templates compiled into the binary (no
//! files to deploy, nothing fetched by the browser but the page and its
//! stylesheet), escaped for HTML by default, and the filters they share.
//!
//! Times arrive in templates as RFC 3339 strings (how chrono serializes)
//! and are shown in the support team's zone, `console.timezone`, which each
//! render passes in as `tz`: one environment serves every configuration.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{context, Environment, State, Value};

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("problem.html", include_str!("templates/problem.html")),
    ("user.html", include_str!("templates/user.html")),
    (
        "notification.html",
        include_str!("templates/notification.html"),
    ),
    ("macros.html", include_str!("templates/macros.html")),
    ("search.html", include_str!("templates/search.html")),
    ("overview.html", include_str!("templates/overview.html")),
];

static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A variable a template names but the handler did not pass is a bug
    // to see in tests, not an empty cell on support's screen.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("console template {name} does not compile: {e}"));
    }
    env.add_filter("time", time);
    env.add_filter("clock", clock);
    env.add_filter("ago", ago);
    env.add_filter("duration", |secs: f64| duration(secs.max(0.0) as u64));
    env.add_filter("segment", segment);
    env
});

/// Renders `name` with `ctx` and the zone `tz`, as a `status` response.
pub fn page(status: StatusCode, name: &str, tz: Tz, ctx: Value) -> Response {
    let ctx = context! { tz => tz.name(), ..ctx };
    match PAGES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %format!("{e:#}"), "a console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>This page failed to render; the daemon's log says why.</p>"),
            )
                .into_response()
        }
    }
}

fn zone(state: &State) -> Tz {
    state
        .lookup("tz")
        .and_then(|v| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(chrono_tz::UTC)
}

fn parse(value: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// "2026-11-26 10:42:03 CET"; an absent time is "—".
fn time(state: &State, value: Value) -> String {
    match parse(&value) {
        Some(t) => t
            .with_timezone(&zone(state))
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        None => "—".into(),
    }
}

/// "10:42:03.512": an attempt's moment, in the same zone.
fn clock(state: &State, value: Value) -> String {
    match parse(&value) {
        Some(t) => t
            .with_timezone(&zone(state))
            .format("%H:%M:%S%.3f")
            .to_string(),
        None => "—".into(),
    }
}

/// "4 s ago", "3 min ago", "in 2 h" (a time still to come).
fn ago(value: Value) -> String {
    let Some(t) = parse(&value) else {
        return "—".into();
    };
    let secs = (Utc::now() - t).num_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let span = duration(n);
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// "42 s", "3 min", "5 h", "2 d".
pub fn duration(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7_199 => format!("{} min", secs / 60),
        7_200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// Percent-encodes one path segment (a user id may hold `/`, `?`, `#`).
fn segment(value: String) -> String {
    percent(&value)
}

/// Percent-encodes everything but the unreserved characters: safe in a
/// path segment and in a query value.
pub fn percent(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            PAGES.get_template(name).unwrap();
        }
    }

    #[test]
    fn segments_are_encoded_so_a_user_id_stays_one_segment() {
        assert_eq!(segment("a/b?c#d e".into()), "a%2Fb%3Fc%23d%20e");
        assert_eq!(segment("user-1_x.y~".into()), "user-1_x.y~");
        assert_eq!(segment("é".into()), "%C3%A9");
    }

    #[test]
    fn durations_read_as_support_would_say_them() {
        assert_eq!(duration(4), "4 s");
        assert_eq!(duration(180), "3 min");
        assert_eq!(duration(3 * 3600), "3 h");
        assert_eq!(duration(3 * 86_400), "3 d");
    }
}

//! What a notification shows and how it behaves on the device, beyond its
//! title, body and data: the APNs push type and the per-message content
//! options (`notifications.options`, a template's `[options]`, `pushrelay
//! send` flags), in one provider-neutral shape that the APNs and FCM
//! mappings read.
//!
//! The options are one JSON object rather than a column each: a producer's
//! `INSERT` names only what it uses, a new option needs no migration, and a
//! database trigger (migrations/0003_content.sql) still refuses a
//! producer's unknown key or bad value at insert time with the key named.
//! The parser here refuses at least everything the trigger does: it reads
//! templates, re-checks rows, and is the only check of the rows the HTTP
//! API writes (they skip the trigger, migration 0007).

use serde::{Deserialize, Serialize};

/// `apns-push-type`: what kind of push it is, which decides the topic
/// suffix Apple expects and, for `background`, the priority and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushType {
    #[default]
    Alert,
    Background,
    Voip,
    Complication,
    Fileprovider,
    Location,
    Liveactivity,
    Pushtotalk,
    Mdm,
}

impl PushType {
    pub const ALL: &'static [PushType] = &[
        PushType::Alert,
        PushType::Background,
        PushType::Voip,
        PushType::Complication,
        PushType::Fileprovider,
        PushType::Location,
        PushType::Liveactivity,
        PushType::Pushtotalk,
        PushType::Mdm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PushType::Alert => "alert",
            PushType::Background => "background",
            PushType::Voip => "voip",
            PushType::Complication => "complication",
            PushType::Fileprovider => "fileprovider",
            PushType::Location => "location",
            PushType::Liveactivity => "liveactivity",
            PushType::Pushtotalk => "pushtotalk",
            PushType::Mdm => "mdm",
        }
    }

    /// What Apple expects after the bundle id in `apns-topic` ("Sending
    /// notification requests to APNs", apns-topic). MDM pushes use the MDM
    /// certificate's own topic, configured as is.
    pub fn topic_suffix(self) -> &'static str {
        match self {
            PushType::Voip => ".voip",
            PushType::Complication => ".complication",
            PushType::Fileprovider => ".pushkit.fileprovider",
            PushType::Liveactivity => ".push-type.liveactivity",
            PushType::Location => ".location-query",
            PushType::Pushtotalk => ".voip-ptt",
            PushType::Alert | PushType::Background | PushType::Mdm => "",
        }
    }

    /// `apns-topic` for an app whose bundle id is `bundle`.
    pub fn topic(self, bundle: &str) -> String {
        format!("{bundle}{}", self.topic_suffix())
    }

    /// Apple's payload limit in bytes: VoIP pushes may be larger.
    pub fn payload_limit(self) -> usize {
        match self {
            PushType::Voip => 5120,
            _ => 4096,
        }
    }
}

impl std::fmt::Display for PushType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `sound`: a sound file name (`"default"` for the system sound), `"none"`
/// for silence, or a critical alert (iOS) with its volume (0.0–1.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sound {
    Name(String),
    Critical {
        critical: u8,
        name: String,
        volume: f64,
    },
}

/// iOS 15 interruption levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InterruptionLevel {
    Passive,
    Active,
    TimeSensitive,
    Critical,
}

impl InterruptionLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            InterruptionLevel::Passive => "passive",
            InterruptionLevel::Active => "active",
            InterruptionLevel::TimeSensitive => "time-sensitive",
            InterruptionLevel::Critical => "critical",
        }
    }
}

/// Per-message content options. Every field is optional; unset ones take
/// the provider's default (and `sound` the system sound for visible pushes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Overrides the app's configured `push_type` (iOS).
    pub push_type: Option<PushType>,
    pub subtitle: Option<String>,
    /// App icon badge; 0 clears it.
    pub badge: Option<u32>,
    pub sound: Option<Sound>,
    /// iOS `thread-id`; Android notification `tag`.
    pub thread_id: Option<String>,
    /// iOS `category`; Android `click_action`.
    pub category: Option<String>,
    pub mutable_content: Option<bool>,
    pub content_available: Option<bool>,
    pub interruption_level: Option<InterruptionLevel>,
    pub relevance_score: Option<f64>,
    pub target_content_id: Option<String>,
    /// An https URL of an image shown with the notification.
    pub image: Option<String>,
    /// Android notification channel.
    pub channel_id: Option<String>,
    pub icon: Option<String>,
    /// `#rrggbb`.
    pub color: Option<String>,
    /// Android: the count shown on the launcher.
    pub notification_count: Option<u32>,
    /// FCM `fcm_options.analytics_label`.
    pub analytics_label: Option<String>,
    /// A silent push: no visible notification, only `data` (and, on iOS, a
    /// background push with `content-available`).
    pub data_only: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionsError {
    #[error("options must be a JSON object like {{\"badge\": 1}}, not {0}")]
    NotAnObject(String),
    #[error("options: {0}")]
    Invalid(String),
    /// One option is unknown or its value wrong.
    #[error("options.{key}: {problem}")]
    Key { key: String, problem: String },
}

impl OptionsError {
    fn key(key: &str, problem: impl Into<String>) -> OptionsError {
        OptionsError::Key {
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    /// The option at fault, when it is one option's.
    pub fn option(&self) -> Option<&str> {
        match self {
            OptionsError::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// The largest badge and notification count: the database's (a PostgreSQL
/// `integer`, as the content trigger checks).
pub const MAX_COUNT: u32 = i32::MAX as u32;

const SOUND_SHAPE: &str =
    r#"must be a sound name, "none", or {"critical": 1, "name": "default", "volume": 0.0..1.0}"#;

impl Options {
    /// Parses and checks an options object (a stored row, a template's
    /// `[options]`, a CLI flag, an API request). `null` is the empty set.
    /// Refuses everything the database's content trigger refuses
    /// (migration 0003), which the API relies on: its rows skip the trigger.
    pub fn from_json(v: &serde_json::Value) -> Result<Options, OptionsError> {
        if v.is_null() {
            return Ok(Options::default());
        }
        let Some(map) = v.as_object() else {
            return Err(OptionsError::NotAnObject(v.to_string()));
        };
        for (k, value) in map {
            // serde reads a null as "not set"; the trigger refuses it.
            if value.is_null() {
                return Err(OptionsError::key(
                    k,
                    "must not be null; leave the option out for its default",
                ));
            }
        }
        // serde's untagged `Sound` would take extra keys, or an array for
        // the critical sound's fields.
        if let Some(sound) = map.get("sound") {
            let ok = match sound {
                serde_json::Value::String(_) => true,
                serde_json::Value::Object(o) => {
                    o.len() == 3
                        && ["critical", "name", "volume"]
                            .iter()
                            .all(|k| o.contains_key(*k))
                }
                _ => false,
            };
            if !ok {
                return Err(OptionsError::key(
                    "sound",
                    format!("{SOUND_SHAPE}; got {sound}"),
                ));
            }
        }
        let o: Options = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.inner().to_string();
            // An unknown key has no path of its own: serde names it
            // ("unknown field `x`, expected one of ..."). The template
            // loader looks for "unknown field".
            let unknown = inner
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once("`, "));
            match path
                .split(['.', '['])
                .next()
                .filter(|k| !k.is_empty() && *k != "?")
            {
                Some(k) => OptionsError::key(k, inner),
                None => match unknown {
                    Some((k, expected)) => {
                        OptionsError::key(k, format!("unknown field (not an option); {expected}"))
                    }
                    None => OptionsError::Invalid(inner),
                },
            }
        })?;
        o.check()?;
        Ok(o)
    }

    /// The value checks serde cannot express; the same as the database's.
    pub fn check(&self) -> Result<(), OptionsError> {
        let bad = |k: &str, m: String| Err(OptionsError::key(k, m));
        if let Some(Sound::Critical {
            critical, volume, ..
        }) = &self.sound
        {
            if *critical != 1 || !(0.0..=1.0).contains(volume) {
                return bad(
                    "sound",
                    format!("{SOUND_SHAPE}; got critical {critical}, volume {volume}"),
                );
            }
        }
        for (k, count) in [
            ("badge", self.badge),
            ("notification_count", self.notification_count),
        ] {
            if let Some(c) = count.filter(|&c| c > MAX_COUNT) {
                return bad(
                    k,
                    format!("must be a whole number from 0 to {MAX_COUNT}, got {c}"),
                );
            }
        }
        if let Some(r) = self.relevance_score {
            if !(0.0..=1.0).contains(&r) {
                return bad(
                    "relevance_score",
                    format!("must be between 0 and 1, got {r}"),
                );
            }
        }
        if let Some(c) = &self.color {
            let ok =
                c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return bad("color", format!("must be #rrggbb, got {c:?}"));
            }
        }
        if let Some(l) = &self.analytics_label {
            let ok = (1..=50).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b));
            if !ok {
                return bad(
                    "analytics_label",
                    format!("must match ^[a-zA-Z0-9-_.~%]{{1,50}}$ (FCM's rule), got {l:?}"),
                );
            }
        }
        if let Some(i) = &self.image {
            if !i.starts_with("https://") {
                return bad("image", format!("must be an https:// URL, got {i:?}"));
            }
        }
        Ok(())
    }

    /// A silent push: asked for, or implied by a background push type.
    pub fn is_data_only(&self) -> bool {
        self.data_only == Some(true) || self.push_type == Some(PushType::Background)
    }

    /// The push type a message goes as: its own, else `default`. Apple: a
    /// push with only content-available is a background push, so a
    /// data-only alert goes as one.
    pub fn push_type_or(&self, default: PushType) -> PushType {
        match self.push_type.unwrap_or(default) {
            PushType::Alert if self.is_data_only() => PushType::Background,
            p => p,
        }
    }

    /// `self` with every option `over` sets replacing its own (a message's
    /// options over its template's).
    pub fn merged(mut self, over: Options) -> Options {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f; } )* };
        }
        take!(
            push_type,
            subtitle,
            badge,
            sound,
            thread_id,
            category,
            mutable_content,
            content_available,
            interruption_level,
            relevance_score,
            target_content_id,
            image,
            channel_id,
            icon,
            color,
            notification_count,
            analytics_label,
            data_only
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_and_bad_options_are_named() {
        let e = Options::from_json(&json!({"badges": 1})).unwrap_err();
        assert!(e.to_string().contains("badges"), "{e}");
        // The template loader tells an unknown key by these words.
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert_eq!(e.option(), Some("badges"));
        for (o, key) in [
            (json!({"badge": "one"}), "badge"),
            (json!({"badge": 2_147_483_648u32}), "badge"),
            (json!({"sound": null}), "sound"),
            (
                json!({"sound": {"critical": 1, "name": "a", "volume": 1, "x": 1}}),
                "sound",
            ),
            (json!({"relevance_score": 2}), "relevance_score"),
        ] {
            let e = Options::from_json(&o).unwrap_err();
            assert_eq!(e.option(), Some(key), "{o}: {e}");
        }
        let e = Options::from_json(&json!({"color": "red"})).unwrap_err();
        assert!(e.to_string().contains("color"), "{e}");
        let e = Options::from_json(&json!({"push_type": "fax"})).unwrap_err();
        assert!(e.to_string().contains("fax"), "{e}");
        let o = Options::from_json(
            &json!({"sound": {"critical": 1, "name": "alarm.caf", "volume": 0.5}, "badge": 0}),
        )
        .unwrap();
        assert_eq!(o.badge, Some(0));
    }
}

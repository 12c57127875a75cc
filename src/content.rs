//! What a notification shows and how it behaves on the device, beyond its
//! title, body and data: the APNs push type and the per-message content
//! options (`notifications.options`, a template's `[options]`, `pushrelay
//! send` flags), in one provider-neutral shape that the APNs and FCM
//! mappings read.
//!
//! The options are one JSON object rather than a column each: a producer's
//! `INSERT` names only what it uses, a new option needs no migration, and a
//! database trigger (migrations/0003_content.sql) still refuses an unknown
//! key or a bad value at insert time with the key named, exactly like the
//! parser here (which reads templates and re-checks rows).

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
}

impl Options {
    /// Parses and checks an options object (a stored row, a template's
    /// `[options]`, a CLI flag). `null` is the empty set.
    pub fn from_json(v: &serde_json::Value) -> Result<Options, OptionsError> {
        if v.is_null() {
            return Ok(Options::default());
        }
        if !v.is_object() {
            return Err(OptionsError::NotAnObject(v.to_string()));
        }
        let o = Options::deserialize(v).map_err(|e| OptionsError::Invalid(e.to_string()))?;
        o.check()?;
        Ok(o)
    }

    /// The value checks serde cannot express; the same as the database's.
    pub fn check(&self) -> Result<(), OptionsError> {
        let bad = |m: String| Err(OptionsError::Invalid(m));
        if let Some(Sound::Critical {
            critical, volume, ..
        }) = &self.sound
        {
            if *critical != 1 || !(0.0..=1.0).contains(volume) {
                return bad(format!(
                    "sound: a critical sound is {{\"critical\": 1, \"name\": \"default\", \"volume\": 0.0..1.0}}, got critical {critical}, volume {volume}"
                ));
            }
        }
        if let Some(r) = self.relevance_score {
            if !(0.0..=1.0).contains(&r) {
                return bad(format!("relevance_score must be between 0 and 1, got {r}"));
            }
        }
        if let Some(c) = &self.color {
            let ok =
                c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return bad(format!("color must be #rrggbb, got {c:?}"));
            }
        }
        if let Some(l) = &self.analytics_label {
            let ok = (1..=50).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b));
            if !ok {
                return bad(format!(
                    "analytics_label must match ^[a-zA-Z0-9-_.~%]{{1,50}}$ (FCM's rule), got {l:?}"
                ));
            }
        }
        if let Some(i) = &self.image {
            if !i.starts_with("https://") {
                return bad(format!("image must be an https:// URL, got {i:?}"));
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

//! The vocabulary every other module shares: platforms, environments,
//! priorities and the states a notification, a delivery and an attempt go
//! through. A leaf module: it imports nothing of the crate.
//!
//! States are stored as `text` (readable by support and by producers'
//! SQL, guarded by `CHECK` constraints) and travel through Rust as enums:
//! a value the code does not know is a decode error, never a silent
//! fallback.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A stored value this build does not know (a newer schema, or a producer
/// writing something the constraints let through).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of: {expected}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
    pub expected: String,
}

/// An enum stored as text: `as_str`, `FromStr`, `Display`, serde and
/// sqlx (`text` and `text[]`) from one list of variants.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownValue {
                        kind: $kind,
                        value: other.to_owned(),
                        expected: $name::ALL
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(s.parse()?)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    };
}

text_enum!(
    /// The device platforms pushrelay sends to.
    Platform, "platform" {
        Ios = "ios",
        Android = "android",
    }
);

impl Platform {
    /// A dense index for per-platform arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

text_enum!(
    /// APNs has separate production and sandbox (development build)
    /// gateways, and a token only works on the one it was issued for.
    Environment, "environment" {
        Production = "production",
        Sandbox = "sandbox",
    }
);

text_enum!(
    /// How urgently a notification must arrive: picks the retry schedule,
    /// the order of fan-out and sending, the share of send slots it may
    /// hold, and the providers' priority fields.
    Priority, "priority" {
        /// Transactional: one-time codes, alerts. Fanned out and sent first.
        Urgent = "urgent",
        /// Marketing: slower retries, at most a share of the send slots.
        Bulk = "bulk",
    }
);

text_enum!(
    /// `pending → dispatched | expired | no_devices | failed | cancelled`.
    NotificationState, "notification state" {
        Pending = "pending",
        Dispatched = "dispatched",
        Expired = "expired",
        NoDevices = "no_devices",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// `sending → delivered | failed | token_dead | expired`, or `pending`
    /// while it waits for a retry (then `sending` again); `cancelled` when
    /// its notification was cancelled before it was sent, or while a try
    /// was in flight that would otherwise have been retried.
    DeliveryState, "delivery state" {
        Pending = "pending",
        Sending = "sending",
        Delivered = "delivered",
        Failed = "failed",
        TokenDead = "token_dead",
        Expired = "expired",
        Cancelled = "cancelled",
    }
);

impl DeliveryState {
    /// Nothing will happen to the delivery any more.
    pub fn is_final(self) -> bool {
        !matches!(self, DeliveryState::Pending | DeliveryState::Sending)
    }
}

text_enum!(
    /// What one send attempt came to, as recorded in its receipt.
    AttemptOutcome, "attempt outcome" {
        Delivered = "delivered",
        Transient = "transient",
        Permanent = "permanent",
        TokenDead = "token_dead",
        ConfigError = "config_error",
        /// The process that held the delivery stopped reporting.
        Lost = "lost",
    }
);

text_enum!(
    /// `scheduled → running → completed`, `paused` in between, or
    /// `cancelled` from any of them.
    CampaignState, "campaign state" {
        Scheduled = "scheduled",
        Running = "running",
        Paused = "paused",
        Completed = "completed",
        Cancelled = "cancelled",
    }
);

/// A token shortened for logs, errors and support screens: enough to tell
/// tokens apart, never enough to send to one.
pub fn mask_token(token: &str) -> String {
    let n = token.chars().count();
    if n <= 12 {
        return format!("{}…", token.chars().take(n / 3).collect::<String>());
    }
    let head: String = token.chars().take(6).collect();
    let tail: String = token.chars().skip(n - 4).collect();
    format!("{head}…{tail}")
}

/// Why a token cannot be a token of its platform.
pub fn token_problem(platform: Platform, token: &str) -> Option<&'static str> {
    match platform {
        // APNs tokens are hex; Apple says not to rely on a fixed length.
        Platform::Ios if token.len() < 32 || token.len() > 200 => {
            Some("APNs tokens are 32 to 200 hex digits")
        }
        Platform::Ios if !token.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some("APNs tokens contain only hex digits (0-9, a-f)")
        }
        Platform::Ios if token.len() % 2 != 0 => {
            Some("APNs tokens are whole bytes: an even number of hex digits")
        }
        Platform::Android if token.len() < 8 || token.len() > 4096 => {
            Some("FCM registration tokens are 8 to 4096 characters")
        }
        Platform::Android if !token.bytes().all(|b| b.is_ascii_graphic()) => {
            Some("FCM registration tokens are printable ASCII without spaces")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_values_are_errors() {
        for s in DeliveryState::ALL {
            assert_eq!(s.as_str().parse::<DeliveryState>(), Ok(*s));
        }
        let err = "sent".parse::<DeliveryState>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown delivery state \"sent\"; expected one of: pending, sending, delivered, failed, token_dead, expired, cancelled"
        );
        assert_eq!(
            serde_json::to_string(&AttemptOutcome::ConfigError).unwrap(),
            "\"config_error\""
        );
    }

    #[test]
    fn masks_keep_tokens_apart_but_unusable() {
        let t = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
        assert_eq!(mask_token(t), "a1b2c3…8f90");
        assert!(mask_token("short").len() < "short".len() + 3);
    }

    #[test]
    fn token_shapes() {
        assert_eq!(token_problem(Platform::Ios, &"ab".repeat(32)), None);
        assert_eq!(
            token_problem(Platform::Ios, "not a token"),
            Some("APNs tokens are 32 to 200 hex digits")
        );
        assert!(token_problem(Platform::Ios, &"zz".repeat(32))
            .unwrap()
            .contains("only hex digits"));
        assert_eq!(
            token_problem(Platform::Android, "fcm:APA91bH-token_x"),
            None
        );
        assert!(token_problem(Platform::Android, "has space in it").is_some());
    }
}

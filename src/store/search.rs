//! The console's search box: whatever support was told — a notification
//! id, a producer's idempotency key, a user id, or the last characters of
//! a device token — found in the apps the viewer may see, each kind
//! through an index (a search must stay instant on a table of millions).
//!
//! Every kind is tried at once (a user id or an idempotency key may look
//! like a UUID, and a token's end like a user id): support types, the
//! page shows what matched.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::model::{mask_token, NotificationState, Platform};

const NOTIFICATION_BY_ID: &str = include_str!("search/notification_by_id.sql");
const NOTIFICATIONS_BY_KEY: &str = include_str!("search/notifications_by_key.sql");
const USERS: &str = include_str!("search/users.sql");
const DEVICES_BY_TOKEN_END: &str = include_str!("search/devices_by_token_end.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("search/notification_by_id", NOTIFICATION_BY_ID),
    ("search/notifications_by_key", NOTIFICATIONS_BY_KEY),
    ("search/users", USERS),
    ("search/devices_by_token_end", DEVICES_BY_TOKEN_END),
];

/// A shorter end of a token matches too many devices to mean one.
pub const MIN_TOKEN_END: usize = 6;
/// At most this many devices are listed for one token end.
pub const MAX_DEVICES: i64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a search found, by kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Found {
    pub notifications: Vec<FoundNotification>,
    pub users: Vec<FoundUser>,
    pub devices: Vec<FoundDevice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FoundNotification {
    pub id: Uuid,
    pub app: String,
    pub user_id: Option<String>,
    pub state: NotificationState,
    pub created_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
}

/// A user id known in one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FoundUser {
    pub user_id: String,
    pub app: String,
    /// Its devices, invalidated ones included.
    pub devices: i64,
    pub notifications: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FoundDevice {
    pub id: i64,
    pub app: String,
    pub user_id: String,
    pub platform: Platform,
    /// Masked.
    pub token: String,
    pub invalidated: bool,
}

/// Where a search that found exactly one thing leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Single {
    Notification(Uuid),
    /// A user, or the owner of the one device found.
    User(String),
}

impl Found {
    pub fn is_empty(&self) -> bool {
        self.notifications.is_empty() && self.users.is_empty() && self.devices.is_empty()
    }

    /// The one thing found, if exactly one was (the console goes straight
    /// to its page).
    pub fn single(&self) -> Option<Single> {
        match (
            self.notifications.as_slice(),
            self.users.as_slice(),
            self.devices.as_slice(),
        ) {
            ([n], [], []) => Some(Single::Notification(n.id)),
            ([], [u], []) => Some(Single::User(u.user_id.clone())),
            ([], [], [d]) => Some(Single::User(d.user_id.clone())),
            // A user id typed in full and the end of one of that user's
            // tokens both lead to the user.
            ([], [u], [d]) if u.user_id == d.user_id && u.app == d.app => {
                Some(Single::User(u.user_id.clone()))
            }
            _ => None,
        }
    }
}

/// Searches `q` (trimmed) in the apps `apps` (those the viewer may see):
/// the notification with that id; the notifications with that idempotency
/// key; that user id; the devices whose token ends with it, when it has at
/// least [`MIN_TOKEN_END`] characters a token can have.
pub async fn search(pool: &PgPool, q: &str, apps: &[String]) -> Result<Found, SearchError> {
    let q = q.trim();
    if q.is_empty() || apps.is_empty() {
        return Ok(Found::default());
    }
    let id = Uuid::try_parse(q).ok();
    let by_id = async {
        match id {
            Some(id) => {
                sqlx::query_as::<_, FoundNotification>(NOTIFICATION_BY_ID)
                    .bind(id)
                    .bind(apps)
                    .fetch_optional(pool)
                    .await
            }
            None => Ok(None),
        }
    };
    let by_key = sqlx::query_as::<_, FoundNotification>(NOTIFICATIONS_BY_KEY)
        .bind(q)
        .bind(apps)
        .fetch_all(pool);
    let users = sqlx::query_as::<_, FoundUser>(USERS)
        .bind(q)
        .bind(apps)
        .fetch_all(pool);
    let devices = async {
        let Some((from, until)) = token_end_range(q) else {
            return Ok(Vec::new());
        };
        sqlx::query_as::<_, FoundDevice>(DEVICES_BY_TOKEN_END)
            .bind(from)
            .bind(until)
            .bind(apps)
            .bind(MAX_DEVICES)
            .fetch_all(pool)
            .await
    };
    let (by_id, by_key, users, mut devices) = tokio::try_join!(by_id, by_key, users, devices)?;
    let mut notifications: Vec<FoundNotification> = by_id.into_iter().collect();
    // An id used as its own idempotency key is one notification.
    notifications.extend(by_key.into_iter().filter(|n| Some(n.id) != id));
    for d in &mut devices {
        d.token = mask_token(&d.token);
    }
    Ok(Found {
        notifications,
        users,
        devices,
    })
}

/// The reversed token's range that a token ending with `q` falls in:
/// `[reverse(q), reverse(q) with its last character one higher)`, in the
/// byte order of text_pattern_ops. `None` when `q` is too short or has a
/// character no token has (tokens are printable ASCII without spaces), so
/// the last one can always be raised without leaving ASCII.
fn token_end_range(q: &str) -> Option<(String, String)> {
    if q.len() < MIN_TOKEN_END || !q.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return None;
    }
    let from: String = q.chars().rev().collect();
    let mut until = from.clone().into_bytes();
    let last = until.last_mut()?;
    *last += 1;
    // Only ASCII bytes, the highest raised to 0x7f: still UTF-8.
    let until = String::from_utf8(until).ok()?;
    Some((from, until))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ends_become_ranges_of_the_reversed_token() {
        assert_eq!(
            token_end_range("a1b2c3"),
            Some(("3c2b1a".to_owned(), "3c2b1b".to_owned()))
        );
        // `~` is the highest token character: raised, it leaves the range
        // of token characters, so the bound is above every token.
        assert_eq!(
            token_end_range("~12345"),
            Some(("54321~".to_owned(), "54321\u{7f}".to_owned()))
        );
        assert_eq!(token_end_range("a1b2c"), None);
        assert_eq!(token_end_range("a1b 2c3"), None);
        assert_eq!(token_end_range("a1b2c3é"), None);
    }
}

//! What the operator's endpoints read from the database: the queue gauges
//! refreshed on every `/metrics` scrape, and the ping of `/readyz`. Both
//! are polled every few seconds by every process, so each is one cheap
//! statement bounded by the partial indexes on pending rows.

use sqlx::PgPool;

const QUEUE: &str = include_str!("metrics/queue.sql");
const PING: &str = include_str!("metrics/ping.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[("metrics/queue", QUEUE), ("metrics/ping", PING)];

/// Due work of one app and platform (deliveries), or of one priority
/// (notifications not yet fanned out).
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub count: i64,
    /// Seconds since the oldest of them became due.
    pub oldest_age_secs: f64,
}

/// The backlog as a scrape reports it. Only what is due is listed: an app
/// or priority with nothing due is absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Queue {
    /// `(app, platform)` → due deliveries.
    pub deliveries: Vec<((String, String), Due)>,
    /// priority → due notifications not yet fanned out.
    pub notifications: Vec<(String, Due)>,
}

#[derive(sqlx::FromRow)]
struct Row {
    queue: String,
    app: Option<String>,
    key: String,
    due: i64,
    oldest_age_secs: f64,
}

/// Reads the backlog in one statement.
pub async fn queue(pool: &PgPool) -> Result<Queue, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(QUEUE).fetch_all(pool).await?;
    let mut q = Queue::default();
    for r in rows {
        let due = Due {
            count: r.due,
            // A row due "now" can read a hair in the future on a second
            // clock read; an age is never negative.
            oldest_age_secs: r.oldest_age_secs.max(0.0),
        };
        match (r.queue.as_str(), r.app) {
            ("deliveries", Some(app)) => q.deliveries.push(((app, r.key), due)),
            _ => q.notifications.push((r.key, due)),
        }
    }
    Ok(q)
}

/// One round trip: the database answers.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar::<_, i32>(PING).fetch_one(pool).await?;
    Ok(())
}

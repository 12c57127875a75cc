//! What `/metrics` reads from the database: the queue gauges and the
//! campaigns under way, refreshed on
//! every scrape. Scrapes come every few seconds to every process, so it is
//! one statement that reads only the partial indexes' pending rows.

use sqlx::PgPool;

const QUEUE: &str = include_str!("metrics/queue.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[("metrics/queue", QUEUE)];

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
    /// state → campaigns scheduled, running or paused.
    pub campaigns: Vec<(String, i64)>,
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
            ("campaigns", _) => q.campaigns.push((r.key, r.due)),
            _ => q.notifications.push((r.key, due)),
        }
    }
    Ok(q)
}

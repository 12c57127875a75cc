//! The FCM quota shared through the database: how many processes share
//! each project's rate, and the QUOTA_EXCEEDED slowdowns every process
//! obeys.
//! One statement per process per round (a second or so), none per send.

use std::time::Duration;

use sqlx::PgPool;

const SYNC: &str = include_str!("quota/sync.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[("quota/sync", SYNC)];

/// What one round learned about a project.
#[derive(Debug, sqlx::FromRow)]
pub struct ProjectQuota {
    /// Live processes, this one included.
    pub live: i64,
    pub project: String,
    /// How long the project's sends are still slowed down (0: not slowed).
    pub slowed_secs: f64,
}

/// Writes this process's slowdowns (`(project, seconds left)`) and reads
/// every project's share and slowdown.
pub async fn sync(
    pool: &PgPool,
    live_within: Duration,
    slowdowns: &[(String, f64)],
) -> Result<Vec<ProjectQuota>, sqlx::Error> {
    let (projects, secs): (Vec<&str>, Vec<f64>) =
        slowdowns.iter().map(|(p, s)| (p.as_str(), *s)).unzip();
    sqlx::query_as(SYNC)
        .bind(live_within.as_secs_f64())
        .bind(projects)
        .bind(secs)
        .fetch_all(pool)
        .await
}

//! Running processes and their leases. A process registers when it starts,
//! heartbeats while it lives, and deregisters when it stops; the rescuer
//! of any process hands back the deliveries of the ones that went silent.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

const REGISTER: &str = include_str!("workers/register.sql");
const HEARTBEAT: &str = include_str!("workers/heartbeat.sql");
const DEREGISTER: &str = include_str!("workers/deregister.sql");
const RESCUE: &str = include_str!("workers/rescue.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("workers/register", REGISTER),
    ("workers/heartbeat", HEARTBEAT),
    ("workers/deregister", DEREGISTER),
    ("workers/rescue", RESCUE),
];

/// What one rescue pass did.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct Rescued {
    /// Deliveries handed back to the queue.
    pub rescued: i64,
    /// Processes declared gone.
    pub dead: Vec<String>,
}

/// Registers `id`. Deliveries an earlier life of the same id still holds
/// are handed back first: that process is gone, whatever its heartbeat says.
pub async fn register(pool: &PgPool, id: &str, host: &str, pid: u32) -> Result<(), sqlx::Error> {
    // Only the earlier life: other processes' heartbeats are not this
    // process's to judge before it has been heard itself.
    let never = Duration::from_secs(100 * 365 * 86_400);
    loop {
        let r = rescue(pool, never, 10_000, &[id.to_owned()]).await?;
        if r.rescued < 10_000 {
            break;
        }
    }
    sqlx::query(REGISTER)
        .bind(id)
        .bind(host)
        .bind(pid as i32)
        .execute(pool)
        .await?;
    Ok(())
}

/// Proves `id` alive. `false` when its registration is gone: another
/// process took it for dead and handed its deliveries back.
pub async fn heartbeat(conn: &mut PgConnection, id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(HEARTBEAT)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

pub async fn deregister(pool: &PgPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(DEREGISTER).bind(id).execute(pool).await?;
    Ok(())
}

/// Hands back up to `limit` deliveries of processes silent for longer than
/// `lease`, of unregistered owners, and of `also_gone`.
#[tracing::instrument(skip(pool))]
pub async fn rescue(
    pool: &PgPool,
    lease: Duration,
    limit: i64,
    also_gone: &[String],
) -> Result<Rescued, sqlx::Error> {
    sqlx::query_as(RESCUE)
        .bind(lease.as_secs_f64())
        .bind(limit)
        .bind(also_gone)
        .fetch_one(pool)
        .await
}

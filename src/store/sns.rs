//! The SNS endpoints pushrelay keeps for devices routed through Amazon
//! SNS: stored on the device when a registration or a send made or
//! checked one, and listed for the reaper when the device is gone (erased,
//! removed, or its token dead). The SNS calls are in `providers::sns`.

use sqlx::PgPool;

use crate::model::Platform;

pub(crate) const SET_ENDPOINTS: &str = include_str!("sns/set_endpoints.sql");
const TO_DELETE: &str = include_str!("sns/to_delete.sql");
const DELETED: &str = include_str!("sns/deleted.sql");
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("sns/set_endpoints", SET_ENDPOINTS),
    ("sns/to_delete", TO_DELETE),
    ("sns/deleted", DELETED),
];

/// Stores a device's checked endpoint (unless its token changed meanwhile).
pub async fn set_endpoint(
    pool: &PgPool,
    device_id: i64,
    token: &str,
    arn: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(SET_ENDPOINTS)
        .bind([device_id])
        .bind([token])
        .bind([arn])
        .execute(pool)
        .await?;
    Ok(())
}

/// An endpoint to delete.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Doomed {
    pub endpoint_arn: String,
    pub app: String,
    pub platform: Platform,
    /// The invalidated device that names it; `None` for an erased one.
    pub device_id: Option<i64>,
}

/// Up to `limit` endpoints to delete, of the routes `routes`
/// (`app/platform`).
pub async fn to_delete(
    pool: &PgPool,
    routes: &[String],
    limit: i64,
) -> Result<Vec<Doomed>, sqlx::Error> {
    sqlx::query_as(TO_DELETE)
        .bind(limit)
        .bind(routes)
        .fetch_all(pool)
        .await
}

/// Records endpoints as deleted.
pub async fn deleted(pool: &PgPool, done: &[Doomed]) -> Result<(), sqlx::Error> {
    let arns: Vec<&str> = done.iter().map(|d| d.endpoint_arn.as_str()).collect();
    let ids: Vec<Option<i64>> = done.iter().map(|d| d.device_id).collect();
    sqlx::query(DELETED)
        .bind(&arns)
        .bind(&ids)
        .execute(pool)
        .await?;
    Ok(())
}

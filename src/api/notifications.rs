//! (being written)

use std::sync::Arc;

use axum::Router;
use sqlx::PgPool;

use super::ApiState;
use crate::config::ApiSettings;

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}

/// Groups concurrent single enqueues into one statement.
pub struct Outbox {}

impl Outbox {
    pub fn start(_pool: PgPool, _settings: &ApiSettings) -> Outbox {
        Outbox {}
    }
}

//! (being written)

use std::sync::Arc;

use axum::Router;

use super::ApiState;

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}

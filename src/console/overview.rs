//! The overview: what support glances at on their second screen all day —
//! is anything stuck (queue depth and the oldest due delivery), is
//! anything failing (the last hour's outcomes and top reasons), is a
//! provider paused and why, and how far the campaigns are.
//!
//! The numbers are read once for every viewer and kept for
//! [`FRESH`]: a dozen screens refreshing cost the database one read per
//! period, not one each. Each viewer then sees only the apps of their key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use minijinja::context;
use tokio::sync::Mutex;

use super::render::page as render;
use super::{ConsoleError, Context, Viewer};
use crate::store::overview::{self, Overview, OverviewError};

/// How long one read serves every viewer.
pub const FRESH: Duration = Duration::from_secs(10);

/// The last read, shared by every viewer of one server. The lock is held
/// while reading, so viewers arriving meanwhile wait for that read instead
/// of starting their own.
#[derive(Default)]
pub struct Cache(Mutex<Option<(Instant, Arc<Overview>)>>);

impl Cache {
    pub fn new() -> Arc<Cache> {
        Arc::new(Cache::default())
    }

    async fn get(&self, state: &Context) -> Result<Arc<Overview>, OverviewError> {
        let mut last = self.0.lock().await;
        if let Some((at, o)) = last.as_ref() {
            if at.elapsed() < FRESH {
                return Ok(o.clone());
            }
        }
        let o = Arc::new(overview::load(&state.pool).await?);
        *last = Some((Instant::now(), o.clone()));
        Ok(o)
    }
}

impl From<OverviewError> for ConsoleError {
    fn from(e: OverviewError) -> Self {
        match e {
            OverviewError::Read { source, .. } => ConsoleError::Database(source),
        }
    }
}

pub async fn page(
    State(state): State<Context>,
    Extension(cache): Extension<Arc<Cache>>,
    viewer: Viewer,
) -> Result<Response, ConsoleError> {
    let all = cache.get(&state).await?;
    let o = all.only(viewer.apps());
    Ok(render(
        StatusCode::OK,
        "overview.html",
        state.settings.console.tz(),
        context! {
            viewer => viewer.context(),
            o,
            fresh_secs => FRESH.as_secs(),
            top => overview::TOP_FAILURES,
        },
    ))
}

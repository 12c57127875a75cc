//! The one way to start pushrelay: [`App::build`] turns settings into a
//! ready application (database reachable and migrated, templates compiled,
//! provider credentials read), [`App::spawn`] / [`App::run`] start its
//! worker and [`App::serve_api`] its HTTP API. `pushrelay run`, the demo and the tests all go through here, as
//! zero-to-production's `Application::build`.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::Settings;
use crate::providers::{ProviderSetupError, Providers};
use crate::store::{self, DbError};
use crate::templates::{TemplateError, Templates};
use crate::worker::{Worker, WorkerError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Templates(#[from] TemplateError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Providers(#[from] ProviderSetupError),
}

pub struct App {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub providers: Providers,
    pub templates: Arc<Templates>,
}

/// A worker running in the background, with its shutdown tokens.
pub struct Running {
    pub stop: CancellationToken,
    pub hard_stop: CancellationToken,
    pub handle: JoinHandle<Result<(), WorkerError>>,
    pub providers: Providers,
}

impl Running {
    /// Graceful stop, waiting for the worker to finish.
    pub async fn shutdown(self) -> Result<(), WorkerError> {
        self.stop.cancel();
        self.handle.await.expect("the worker task panicked")
    }
}

impl App {
    /// Connects to the configured database (which must be migrated).
    pub async fn build(settings: Settings) -> Result<App, AppError> {
        let pool = store::connect(&settings.database).await?;
        store::check_schema(&pool).await?;
        if let Some(advice) = store::autovacuum_warning(&pool).await? {
            tracing::warn!("{advice}");
        }
        App::with_pool(settings, pool)
    }

    /// An app on a pool the caller made (tests: a database per test).
    pub fn with_pool(settings: Settings, pool: PgPool) -> Result<App, AppError> {
        let templates = Arc::new(Templates::load(&settings.templates.dir)?);
        let providers = Providers::from_settings(&settings)?;
        Ok(App {
            pool,
            settings: Arc::new(settings),
            providers,
            templates,
        })
    }

    pub fn worker(&self) -> Worker {
        Worker::new(
            self.pool.clone(),
            self.settings.clone(),
            self.providers.clone(),
            self.templates.clone(),
        )
    }

    /// What the HTTP API's handlers share (see [`crate::api`]).
    pub fn api_state(&self) -> Arc<ApiState> {
        Arc::new(ApiState {
            sns: self.providers.sns().clone(),
            ..ApiState::new(
                self.pool.clone(),
                self.settings.clone(),
                self.templates.clone(),
            )
        })
    }

    /// Serves the HTTP API on `listener` in the background until `stop`.
    pub fn serve_api(
        &self,
        listener: tokio::net::TcpListener,
        stop: CancellationToken,
    ) -> JoinHandle<std::io::Result<()>> {
        tokio::spawn(api::serve(listener, self.api_state(), stop))
    }

    /// Runs the worker until `stop` (see [`Worker::run`]).
    pub async fn run(
        self,
        stop: CancellationToken,
        hard_stop: CancellationToken,
    ) -> Result<(), WorkerError> {
        self.worker().run(stop, hard_stop).await
    }

    /// Runs the worker in the background.
    pub fn spawn(self) -> Running {
        let (stop, hard_stop) = (CancellationToken::new(), CancellationToken::new());
        let providers = self.providers.clone();
        let handle = tokio::spawn(self.run(stop.clone(), hard_stop.clone()));
        Running {
            stop,
            hard_stop,
            handle,
            providers,
        }
    }
}

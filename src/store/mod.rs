//! Everything pushrelay says to PostgreSQL: the pool, the embedded
//! migrations, and one module per table or concern, each running the
//! `.sql` files kept beside it (`store/<module>/<statement>.sql`). The
//! only SQL written inline is the DDL that names a database (identifiers
//! cannot be bound) and the session setup of `migrate`.
//!
//! The migrations' bookkeeping table lives in the `pushrelay` schema too
//! (not `public`), so pushrelay can share a database with a producer that
//! runs its own sqlx migrations.

pub mod api_keys;
pub mod campaigns;
pub mod deliveries;
pub mod devices;
pub mod history;
pub mod holds;
pub mod metrics;
pub mod notifications;
pub mod overview;
pub mod quota;
pub mod receipts;
pub mod search;
pub mod sessions;
pub mod sns;
pub mod status;
pub mod users;
pub mod workers;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::DatabaseSettings;

/// Every statement of the store, by name: a test prepares each one against
/// a migrated database, so a statement that no longer fits the schema
/// fails the build's tests rather than a daemon in production.
pub fn statements() -> impl Iterator<Item = (&'static str, &'static str)> {
    [
        api_keys::STATEMENTS,
        campaigns::STATEMENTS,
        notifications::STATEMENTS,
        deliveries::STATEMENTS,
        devices::STATEMENTS,
        workers::STATEMENTS,
        quota::STATEMENTS,
        history::STATEMENTS,
        holds::STATEMENTS,
        status::STATEMENTS,
        metrics::STATEMENTS,
        receipts::STATEMENTS,
        search::STATEMENTS,
        sessions::STATEMENTS,
        users::STATEMENTS,
        overview::STATEMENTS,
        sns::STATEMENTS,
        &[
            ("schema/has_migrations", HAS_MIGRATIONS),
            ("schema/applied_version", APPLIED_VERSION),
            ("schema/autovacuum", AUTOVACUUM),
        ],
    ]
    .into_iter()
    .flatten()
    .copied()
}

const HAS_MIGRATIONS: &str = include_str!("schema/has_migrations.sql");
const APPLIED_VERSION: &str = include_str!("schema/applied_version.sql");
const AUTOVACUUM: &str = include_str!("schema/autovacuum.sql");

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database.url is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error(
        "cannot reach PostgreSQL at {target}: {source}\n\
         Start PostgreSQL there, or point pushrelay at yours with DATABASE_URL=postgres://user@host:port/db \
         (or database.url in config.toml)"
    )]
    Unreachable {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the database schema is at version {applied} but this pushrelay needs {latest}; run `pushrelay migrate` first")]
    Outdated { applied: i64, latest: i64 },
    #[error("migrating the pushrelay schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// `host:port/database` of a URL, without credentials, for messages.
pub fn describe(opts: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("(default database)")
    )
}

/// Connection options for pushrelay's sessions. Their statements are
/// planned for the values of each execution: a cached generic plan
/// guesses a `LIMIT $1` batch at a tenth of the table and answers with
/// sequential scans of `devices` and `notifications` on every fan-out
/// (pg_stat_statements: 23 ms a batch). Planning a batch of 500
/// takes about 2 ms, some 2 µs per delivery.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, DbError> {
    url.parse::<PgConnectOptions>()
        .map(|o| {
            o.application_name("pushrelay")
                .options([("plan_cache_mode", "force_custom_plan")])
        })
        .map_err(DbError::BadUrl)
}

/// Opens the pool, failing fast with a plain message when the server is not
/// there.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    let opts = connect_options(&settings.url)?;
    let target = describe(&opts);
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.connect_timeout_secs.max(1)))
        .connect_with(opts)
        .await
        .map_err(|source| DbError::Unreachable { target, source })
}

/// A connection to the server's `postgres` database, for creating and
/// dropping the database `opts` names.
async fn server_connection(opts: &PgConnectOptions) -> Result<PgConnection, DbError> {
    PgConnection::connect_with(&opts.clone().database("postgres"))
        .await
        .map_err(|source| DbError::Unreachable {
            target: describe(opts),
            source,
        })
}

/// Identifiers cannot be bound; quote one by doubling its quotes.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the configured database if it does not exist (for the demo).
pub async fn create_database_if_missing(url: &str) -> Result<(), DbError> {
    let opts = connect_options(url)?;
    let Some(name) = opts.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut conn = server_connection(&opts).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        match sqlx::raw_sql(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and now.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await?;
    Ok(())
}

/// Drops and creates the database `url` names (the benchmark's own).
pub async fn recreate_database(url: &str) -> Result<(), DbError> {
    let opts = connect_options(url)?;
    let name = quote_ident(opts.get_database().unwrap_or("pushrelay"));
    let mut conn = server_connection(&opts).await?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Applies the embedded migrations. Safe to run concurrently and repeatedly.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("CREATE SCHEMA IF NOT EXISTS pushrelay; SET search_path TO pushrelay")
        .execute(&mut *conn)
        .await?;
    let result = MIGRATOR.run(&mut *conn).await;
    // The connection goes back to the pool: restore the default path.
    sqlx::raw_sql("RESET search_path")
        .execute(&mut *conn)
        .await?;
    result?;
    Ok(())
}

/// Fails with a plain instruction when the schema is missing or older than
/// this binary, instead of letting queries fail one by one.
pub async fn check_schema(pool: &PgPool) -> Result<(), DbError> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let exists: bool = sqlx::query_scalar(HAS_MIGRATIONS).fetch_one(pool).await?;
    let applied: Option<i64> = if exists {
        sqlx::query_scalar(APPLIED_VERSION).fetch_one(pool).await?
    } else {
        None
    };
    match applied {
        Some(v) if v >= latest => Ok(()),
        Some(v) => Err(DbError::Outdated { applied: v, latest }),
        None => Err(DbError::Outdated { applied: 0, latest }),
    }
}

/// The tables pushrelay churns are only vacuumed and analyzed by
/// autovacuum (the per-table settings of the migrations make it keep up).
/// `Some(advice)` when the server has it turned off.
pub async fn autovacuum_warning(pool: &PgPool) -> Result<Option<String>, DbError> {
    let on: String = sqlx::query_scalar(AUTOVACUUM).fetch_one(pool).await?;
    Ok((on != "on").then(|| {
        "autovacuum is off on this PostgreSQL server: nothing vacuums or analyzes pushrelay's \
         queue tables, so dead rows and stale statistics slow every claim over time. Turn it on \
         (autovacuum = on in postgresql.conf), or run VACUUM (ANALYZE) on pushrelay.deliveries, \
         pushrelay.notifications and pushrelay.attempts regularly"
            .to_owned()
    }))
}

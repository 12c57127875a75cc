//! Migrations: embedded, repeatable, and kept out of the producer's way.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrations = false)]
async fn migrations_are_repeatable_and_live_in_their_own_schema(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = PgPoolOptions::new().connect_with(opts).await.unwrap();
    let err = pushrelay::store::check_schema(&pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("run `pushrelay migrate`"), "{err}");

    pushrelay::store::migrate(&pool).await.unwrap();
    pushrelay::store::migrate(&pool).await.unwrap();
    pushrelay::store::check_schema(&pool).await.unwrap();

    // The producer's own sqlx migrations table (in public) is untouched.
    let public: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(public, None);
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'pushrelay'
            AND table_name IN ('devices', 'notifications', 'deliveries', 'attempts', 'workers', '_sqlx_migrations')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 6);
}

#[sqlx::test(migrations = false)]
async fn every_statement_fits_the_schema(_: PgPoolOptions, opts: PgConnectOptions) {
    use sqlx::Executor;
    let pool = PgPoolOptions::new().connect_with(opts).await.unwrap();
    pushrelay::store::migrate(&pool).await.unwrap();
    let mut checked = 0;
    let bench = pushrelay::cli::BENCH_STATEMENTS.iter().copied();
    for (name, sql) in pushrelay::store::statements().chain(bench) {
        // PostgreSQL parses, plans and type-checks it without running it.
        if let Err(e) = pool.describe(sql).await {
            panic!("store statement {name} does not fit the schema: {e}");
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} statements listed");
}

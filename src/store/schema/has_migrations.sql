SELECT to_regclass('pushrelay._sqlx_migrations') IS NOT NULL

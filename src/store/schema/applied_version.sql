-- The newest migration applied (ask has_migrations.sql first: before the
-- first migration the table does not exist).
SELECT max(version) FROM pushrelay._sqlx_migrations WHERE success

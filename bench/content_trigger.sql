-- What the per-row content trigger costs a 1,000-row insert like the API's
-- batch (BENCHMARKS.md, "HTTP API: enqueue"): the same rows without a
-- request digest (the trigger runs, as for a producer's INSERT) and with
-- one (migration 0007 skips it), three times each, each rolled back.
--
--   psql -X -d <a database migrated by `pushrelay migrate`> -f bench/content_trigger.sql | grep 'Execution Time'
\set rows 'SELECT ''demo'', ''bench-user-'' || i, ''Your statement is ready'', jsonb_build_object(''amount'', ''12.00'', ''currency'', ''EUR'', ''ref'', i::text), ''bulk'''
\echo trigger runs (no digest)
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO pushrelay.notifications (app, user_id, body, data, priority) :rows FROM generate_series(1, 1000) i; ROLLBACK;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO pushrelay.notifications (app, user_id, body, data, priority) :rows FROM generate_series(1, 1000) i; ROLLBACK;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO pushrelay.notifications (app, user_id, body, data, priority) :rows FROM generate_series(1, 1000) i; ROLLBACK;
\echo trigger skipped (API rows carry a digest)
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO pushrelay.notifications (app, user_id, body, data, priority, request_sha256) :rows, sha256(i::text::bytea) FROM generate_series(1, 1000) i; ROLLBACK;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO pushrelay.notifications (app, user_id, body, data, priority, request_sha256) :rows, sha256(i::text::bytea) FROM generate_series(1, 1000) i; ROLLBACK;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO pushrelay.notifications (app, user_id, body, data, priority, request_sha256) :rows, sha256(i::text::bytea) FROM generate_series(1, 1000) i; ROLLBACK;

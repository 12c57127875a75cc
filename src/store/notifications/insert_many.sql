-- Inserts a batch of notifications in one statement (the outbox's NOTIFY
-- trigger fires once per statement, not per row). Ids are drawn by the
-- caller (UUIDv7: time-ordered, so the primary key index stays
-- append-mostly). `device_ids` travel as array literals ('{1,2}'), since
-- UNNEST cannot take a ragged two-dimensional array. A row whose
-- (app, idempotency_key) exists already, or repeats an earlier row of the
-- same batch, is skipped: the caller looks those up.
INSERT INTO pushrelay.notifications
    (id, app, user_id, device_ids, template, title, body, data, priority, collapse_key,
     ttl_seconds, send_at, idempotency_key, options, request_sha256)
SELECT u.id, u.app, u.user_id, u.device_ids::bigint[], u.template, u.title, u.body, u.data,
       COALESCE(u.priority, 'urgent'), u.collapse_key, COALESCE(u.ttl_seconds, 86400),
       COALESCE(u.send_at, now()), u.idempotency_key, u.options, u.request_sha256
  FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::text[], $8::jsonb[], $9::text[], $10::text[], $11::int[],
              $12::timestamptz[], $13::text[], $14::jsonb[], $15::bytea[])
       AS u(id, app, user_id, device_ids, template, title, body, data, priority, collapse_key,
            ttl_seconds, send_at, idempotency_key, options, request_sha256)
ON CONFLICT (app, idempotency_key) DO NOTHING
RETURNING id, created_at, send_at

-- The outbox insert of the CLI and the library, the same as a producer's
-- (README); with an idempotency key already used for the app it inserts
-- nothing and the caller reads the existing row.
INSERT INTO pushrelay.notifications
    (app, user_id, device_ids, template, title, body, data, priority, collapse_key,
     ttl_seconds, send_at, idempotency_key, options)
VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, 'urgent'), $9,
        COALESCE($10, 86400), COALESCE($11, now()), $12, COALESCE($13, '{}'::jsonb))
ON CONFLICT (app, idempotency_key) DO NOTHING
RETURNING id

-- The notifications a producer enqueued with this idempotency key, one
-- per visible app at most (the key is unique per app: the unique index
-- on (app, idempotency_key) answers).
--   $1 idempotency key  $2 visible apps
SELECT id, app, user_id, state, created_at, idempotency_key
  FROM pushrelay.notifications
 WHERE app = ANY($2) AND idempotency_key = $1
 ORDER BY created_at DESC, id

-- The notification with this id, if its app is one the viewer may see.
--   $1 id  $2 visible apps
SELECT id, app, user_id, state, created_at, idempotency_key
  FROM pushrelay.notifications
 WHERE id = $1 AND app = ANY($2)

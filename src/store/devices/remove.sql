-- Unregisters a device: invalidated rather than deleted, so its delivery
-- history stays answerable. Removing it again keeps the first reason.
-- $3 limits the apps (an API key's), NULL for every app.
UPDATE pushrelay.devices
   SET invalidated_at = COALESCE(invalidated_at, now()),
       invalidated_reason = COALESCE(invalidated_reason, $2),
       updated_at = now()
 WHERE id = $1 AND ($3::text[] IS NULL OR app = ANY($3))

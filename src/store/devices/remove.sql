-- Unregisters a device: invalidated rather than deleted, so its delivery
-- history stays answerable.
UPDATE pushrelay.devices
   SET invalidated_at = COALESCE(invalidated_at, now()),
       invalidated_reason = COALESCE(invalidated_reason, 'removed by operator'),
       updated_at = now()
 WHERE id = $1

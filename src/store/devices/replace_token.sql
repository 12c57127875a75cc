-- A token the platform replaced ($3 → $4, FCM's onNewToken, an APNs
-- re-registration) of app $1 and platform $2: the device keeps its row
-- (id, history, consent, SNS endpoint, checked before its next publish)
-- under the new token. When the new token is registered already, the old
-- one's device is invalidated instead: two rows cannot hold one token.
WITH moved AS (
    UPDATE pushrelay.devices
       SET token = $4, sns_endpoint_stale = true, updated_at = now()
     WHERE app = $1 AND platform = $2 AND token = $3
       AND NOT EXISTS (SELECT 1 FROM pushrelay.devices
                        WHERE app = $1 AND platform = $2 AND token = $4)
    RETURNING id
)
UPDATE pushrelay.devices
   SET invalidated_at = COALESCE(invalidated_at, now()),
       invalidated_reason = COALESCE(invalidated_reason, 'replaced by a newer token'),
       updated_at = now()
 WHERE app = $1 AND platform = $2 AND token = $3 AND NOT EXISTS (SELECT 1 FROM moved)

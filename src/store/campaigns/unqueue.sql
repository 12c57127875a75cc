-- Pausing: the campaign's notifications not yet fanned out (the pump
-- keeps them to a batch or two) are taken back and their targets wait
-- again, so nothing more is sent; resuming queues them anew. One that
-- fan-out holds at this moment is being sent and is skipped.
WITH taken AS (
    DELETE FROM pushrelay.notifications
     WHERE id IN (SELECT id FROM pushrelay.notifications
                   WHERE campaign_id = $1 AND state = 'pending'
                     FOR UPDATE SKIP LOCKED)
    RETURNING device_ids
)
UPDATE pushrelay.campaign_targets
   SET state = 'pending', notification_id = NULL, queued_at = NULL
 WHERE campaign_id = $1 AND state = 'queued'
   AND device_id IN (SELECT unnest(device_ids) FROM taken)

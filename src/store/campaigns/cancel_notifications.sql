-- Cancelling, second step: its notifications not yet fanned out, and the
-- targets they carried (cancelled too, not left `queued` for ever). The
-- row locks wait for a fan-out holding one, so the next step sees the
-- deliveries it made.
WITH cancelled AS (
    UPDATE pushrelay.notifications
       SET state = 'cancelled', state_reason = 'its campaign was cancelled',
           cancelled_at = COALESCE(cancelled_at, now())
     WHERE campaign_id = $1 AND state = 'pending'
    RETURNING id
)
UPDATE pushrelay.campaign_targets t
   SET state = 'cancelled'
  FROM cancelled c
 WHERE t.campaign_id = $1 AND t.state = 'queued' AND t.notification_id = c.id

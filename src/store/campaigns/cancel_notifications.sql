-- Cancelling, second step: its notifications not yet fanned out. The row
-- locks wait for a fan-out holding one, so the next step sees the
-- deliveries it made.
UPDATE pushrelay.notifications
   SET state = 'cancelled', state_reason = 'its campaign was cancelled',
       cancelled_at = COALESCE(cancelled_at, now())
 WHERE campaign_id = $1 AND state = 'pending'

-- Cancelling, last step: deliveries waiting for a (re)try become
-- `cancelled`; one being sent keeps its try and is never retried (as for
-- a cancelled notification).
UPDATE pushrelay.deliveries
   SET state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
       last_error = CASE WHEN state = 'pending' THEN 'cancelled' ELSE last_error END,
       lease_owner = CASE WHEN state = 'pending' THEN NULL ELSE lease_owner END,
       cancelled_at = COALESCE(cancelled_at, now()),
       updated_at = now()
 WHERE campaign_id = $1 AND state IN ('pending', 'sending')

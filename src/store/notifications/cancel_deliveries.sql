-- Cancellation, second step: the notification's deliveries waiting for a
-- (re)try become `cancelled`; those being sent keep their try (it cannot
-- be recalled) and are marked, so their result is never retried. One
-- UPDATE over both states: a delivery that moves between them while this
-- runs (a result written, a retry claimed) is re-checked in its new state
-- and still caught.
UPDATE pushrelay.deliveries
   SET state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
       last_error = CASE WHEN state = 'pending' THEN 'cancelled' ELSE last_error END,
       lease_owner = CASE WHEN state = 'pending' THEN NULL ELSE lease_owner END,
       cancelled_at = COALESCE(cancelled_at, now()),
       updated_at = now()
 WHERE notification_id = $1 AND state IN ('pending', 'sending')

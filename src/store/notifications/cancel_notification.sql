-- Cancellation, first step: a pending notification becomes `cancelled`
-- (fan-out will never claim it); any other keeps its state. The row lock
-- taken here waits for a fan-out holding the notification, so the next
-- step's snapshot sees every delivery that fan-out created.
-- `cancelled_at` is set once: a repeated cancel changes nothing. Only a
-- notification of the apps in $2 (NULL: any) is touched.
UPDATE pushrelay.notifications
   SET state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
       state_reason = CASE WHEN state = 'pending' THEN 'cancelled through the API'
                           ELSE state_reason END,
       cancelled_at = COALESCE(cancelled_at, now())
 WHERE id = $1 AND ($2::text[] IS NULL OR app = ANY($2))
RETURNING id

-- Hands deliveries this process ($2) holds back to the queue, due now,
-- without counting the try (shutdown: not sent, or abandoned mid-send).
UPDATE pushrelay.deliveries
   SET state = 'pending', attempts = greatest(attempts - 1, 0), tries = greatest(tries - 1, 0),
       next_attempt_at = now(), lease_owner = NULL, updated_at = now()
 WHERE id = ANY($1) AND lease_owner = $2 AND state = 'sending'

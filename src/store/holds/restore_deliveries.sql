-- Their deliveries, ended as token_dead by the burst: pending again, due
-- when the pause ends ($2), the attempt given back (expiry still applies
-- when they are claimed).
UPDATE pushrelay.deliveries
   SET state = 'pending', attempts = greatest(attempts - 1, 0), next_attempt_at = $2,
       last_error = $3, updated_at = now()
 WHERE id = ANY($1) AND state = 'token_dead'

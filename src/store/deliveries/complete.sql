-- The results of one batch of deliveries, written only where this process
-- ($8) still holds the lease. `undo_attempt`/`undo_try` give back what the
-- claim counted when nothing was sent, or a credential error must not use
-- up the retry budget. A delivery cancelled while its try was in flight
-- (`cancelled_at`) is not retried: where the result says "try again" it
-- becomes `cancelled`.
UPDATE pushrelay.deliveries d
   SET state = CASE WHEN u.state = 'pending' AND d.cancelled_at IS NOT NULL THEN 'cancelled'
                    ELSE u.state END,
       attempts = d.attempts - u.undo_attempt, tries = d.tries - u.undo_try,
       next_attempt_at = COALESCE(u.next_at, d.next_attempt_at),
       provider_message_id = COALESCE(u.pmid, d.provider_message_id),
       last_error = CASE WHEN u.state = 'pending' AND d.cancelled_at IS NOT NULL
                         THEN concat_ws('; ', u.err, 'cancelled while in flight; not retried')
                         ELSE u.err END,
       lease_owner = NULL, updated_at = now()
  FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::int[], $5::int[], $6::text[],
              $7::text[]) AS u(id, state, next_at, undo_attempt, undo_try, pmid, err)
 WHERE d.id = u.id AND d.lease_owner = $8 AND d.state = 'sending'

-- Of a batch's tries ($1 delivery, $2 number), those whose receipt is the
-- rescuer's `lost` one: the batch's own receipt was not written for them.
SELECT a.delivery_id
  FROM UNNEST($1::bigint[], $2::int[]) AS u(delivery_id, attempt)
  JOIN pushrelay.attempts a ON a.delivery_id = u.delivery_id AND a.attempt = u.attempt
 WHERE a.outcome = 'lost'

-- Every attempt of these deliveries. The last try of a delivery cancelled
-- while it was in flight was written with the retry it asked for, which
-- cancellation then stopped (the hot path does not look the state up):
-- no retry is shown for it. Both sides are bounded by the ids ($1 twice)
-- so the join stays two index probes per delivery whatever the
-- statistics say (a stale estimate hash-joined all deliveries: 44 ms).
SELECT a.delivery_id, a.attempt, a.worker, a.provider, a.started_at, a.latency_ms, a.outcome,
       a.status_code, a.reason,
       CASE WHEN d.state = 'cancelled' AND a.attempt = d.tries THEN NULL ELSE a.retry_at END
           AS retry_at
  FROM pushrelay.attempts a JOIN pushrelay.deliveries d ON d.id = a.delivery_id
 WHERE a.delivery_id = ANY($1) AND d.id = ANY($1) ORDER BY a.delivery_id, a.attempt

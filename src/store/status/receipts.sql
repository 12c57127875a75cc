SELECT delivery_id, attempt, worker, provider, started_at, latency_ms, outcome,
       status_code, reason, retry_at
  FROM pushrelay.attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt

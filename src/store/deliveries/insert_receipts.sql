-- One receipt per try. A try the rescuer already recorded as `lost` (its
-- process was taken for dead) keeps that receipt.
INSERT INTO pushrelay.attempts
    (delivery_id, attempt, worker, provider, started_at, finished_at, latency_ms,
     outcome, status_code, reason, retry_at, provider_message_id)
SELECT u.delivery_id, u.attempt, $12, u.provider, u.started_at, u.finished_at, u.latency_ms,
       u.outcome, u.status_code, u.reason, u.retry_at, u.pmid
  FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::timestamptz[],
              $6::int[], $7::text[], $8::int[], $9::text[], $10::timestamptz[], $11::text[])
       AS u(delivery_id, attempt, provider, started_at, finished_at, latency_ms,
            outcome, status_code, reason, retry_at, pmid)
ON CONFLICT (delivery_id, attempt) DO NOTHING

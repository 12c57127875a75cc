-- Adds a batch's tries to the per-minute outcome counts: one row per key,
-- already summed and in key order (so concurrent batches lock shared rows
-- in the same order).
INSERT INTO pushrelay.attempt_counts AS c (minute, app, platform, outcome, reason, count)
SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
ON CONFLICT (minute, app, platform, outcome, reason)
DO UPDATE SET count = c.count + excluded.count

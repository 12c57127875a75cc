-- Tries of the last hour ($1: its start) per app, platform, outcome and
-- reason, from the per-minute counts (at most 60 rows per key).
SELECT app, platform, outcome, reason, sum(count)::int8 AS count
  FROM pushrelay.attempt_counts
 WHERE minute >= $1
 GROUP BY app, platform, outcome, reason

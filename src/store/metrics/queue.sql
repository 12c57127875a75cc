-- The queue gauges of a /metrics scrape, in one statement: per app and
-- platform the deliveries that are due (pending, their time come) and how
-- overdue the oldest one is; per priority the notifications due but not
-- yet fanned out (`app` NULL). Both halves read only the rows of their
-- table's partial index on pending rows (deliveries_pending_due,
-- notifications_pending_due), so a scrape costs in proportion to the
-- backlog, not to the tables' history. Last, the campaigns that are not
-- over, per state (a small table).
SELECT 'deliveries' AS queue, app, platform AS key, count(*) AS due,
       extract(epoch FROM now() - min(next_attempt_at))::float8 AS oldest_age_secs
  FROM pushrelay.deliveries
 WHERE state = 'pending' AND next_attempt_at <= now()
 GROUP BY app, platform
UNION ALL
SELECT 'notifications', NULL, priority, count(*),
       extract(epoch FROM now() - min(send_at))::float8
  FROM pushrelay.notifications
 WHERE state = 'pending' AND send_at <= now()
 GROUP BY priority
UNION ALL
SELECT 'campaigns', NULL, state, count(*), 0
  FROM pushrelay.campaigns
 WHERE state IN ('scheduled', 'running', 'paused')
 GROUP BY state

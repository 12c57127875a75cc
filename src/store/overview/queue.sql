-- Deliveries waiting or in flight per app and platform: due (pending, their
-- time come) with how overdue the oldest is, pending for later (a retry or
-- a pause), and being sent. Each half reads only its partial index's rows
-- (deliveries_pending_due, deliveries_leased), so it costs in proportion
-- to the backlog, never to history.
SELECT app, platform,
       sum(due)::int8 AS due,
       extract(epoch FROM now() - min(oldest_due))::float8 AS oldest_due_age_secs,
       sum(later)::int8 AS later,
       sum(sending)::int8 AS sending
  FROM (SELECT app, platform,
               count(*) FILTER (WHERE next_attempt_at <= now()) AS due,
               min(next_attempt_at) FILTER (WHERE next_attempt_at <= now()) AS oldest_due,
               count(*) FILTER (WHERE next_attempt_at > now()) AS later,
               0 AS sending
          FROM pushrelay.deliveries
         WHERE state = 'pending'
         GROUP BY app, platform
        UNION ALL
        SELECT app, platform, 0, NULL, 0, count(*)
          FROM pushrelay.deliveries
         WHERE state = 'sending'
         GROUP BY app, platform) q
 GROUP BY app, platform
 ORDER BY app, platform

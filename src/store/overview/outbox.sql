-- Notifications not yet fanned out, per app: due (with how overdue the
-- oldest is) and scheduled for later. Reads only the pending rows
-- (notifications_pending_due).
SELECT app,
       count(*) FILTER (WHERE send_at <= now()) AS due,
       extract(epoch FROM now() - min(send_at) FILTER (WHERE send_at <= now()))::float8
           AS oldest_due_age_secs,
       count(*) FILTER (WHERE send_at > now()) AS later
  FROM pushrelay.notifications
 WHERE state = 'pending'
 GROUP BY app
 ORDER BY app

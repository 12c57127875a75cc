-- The deliveries of these notifications, with their devices' tokens. The
-- token is looked up per delivery rather than joined: with statistics
-- older than a bulk load the planner expects thousands of deliveries here
-- and hash-joins the whole devices table (24 ms for six deliveries, seen
-- with autovacuum off); a support view must not depend on fresh ANALYZE.
SELECT d.id, d.notification_id, d.device_id, d.platform,
       (SELECT v.token FROM pushrelay.devices v WHERE v.id = d.device_id) AS token,
       d.state, d.attempts,
       CASE WHEN d.state = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
       d.provider_message_id, d.last_error, d.cancelled_at
  FROM pushrelay.deliveries d
 WHERE d.notification_id = ANY($1) ORDER BY d.id

-- Delivery quality of the deliveries of notifications created since $1:
-- how many were deliverable (the token is not one the mock kills), how
-- many of those the provider accepted before they expired, how they ended
-- otherwise, the sends started after a delivery's expiry (must be none),
-- and the attempts (retry budget spent) and tries (receipts) they took.
SELECT count(*) FILTER (WHERE deliverable),
       count(*) FILTER (WHERE deliverable AND accepted_in_time),
       count(*) FILTER (WHERE deliverable AND state = 'failed'),
       count(*) FILTER (WHERE deliverable AND state = 'expired'),
       coalesce(sum(late_sends), 0)::int8,
       coalesce(sum(attempts), 0)::int8,
       coalesce(sum(tries), 0)::int8
  FROM (SELECT d.state, d.attempts, d.tries, v.token NOT LIKE 'dead%' AS deliverable,
               EXISTS (SELECT 1 FROM pushrelay.attempts a
                        WHERE a.delivery_id = d.id AND a.outcome = 'delivered'
                          AND a.finished_at <= d.expires_at) AS accepted_in_time,
               (SELECT count(*) FROM pushrelay.attempts a
                 WHERE a.delivery_id = d.id AND a.started_at > d.expires_at) AS late_sends
          FROM pushrelay.notifications n
          JOIN pushrelay.deliveries d ON d.notification_id = n.id
          JOIN pushrelay.devices v ON v.id = d.device_id
         WHERE n.created_at >= $1) q

-- What a cancellation stopped, read after it: the same answer for every
-- repeat of the call.
SELECT n.id, n.state, n.cancelled_at,
       count(d.id) FILTER (WHERE d.state = 'cancelled') AS cancelled_deliveries,
       count(d.id) FILTER (WHERE d.state = 'sending') AS in_flight,
       count(d.id) FILTER (WHERE d.state NOT IN ('pending', 'sending', 'cancelled')) AS finished
  FROM pushrelay.notifications n
  LEFT JOIN pushrelay.deliveries d ON d.notification_id = n.id
 WHERE n.id = $1
 GROUP BY n.id, n.state, n.cancelled_at

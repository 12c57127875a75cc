-- Enqueue → provider accepted of the priority-$2 notifications since $1.
SELECT count(*),
     percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
     percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
     max(ms)
FROM (SELECT (extract(epoch FROM a.finished_at - n.created_at) * 1000)::float8 AS ms
        FROM pushrelay.notifications n
        JOIN pushrelay.deliveries d ON d.notification_id = n.id
        JOIN pushrelay.attempts a ON a.delivery_id = d.id AND a.outcome = 'delivered'
       WHERE n.created_at >= $1 AND n.priority = $2) l

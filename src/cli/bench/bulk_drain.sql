-- Bulk deliveries accepted since $1: how many, first and last acceptance.
SELECT count(*), min(a.finished_at), max(a.finished_at)
 FROM pushrelay.notifications n
 JOIN pushrelay.deliveries d ON d.notification_id = n.id
 JOIN pushrelay.attempts a ON a.delivery_id = d.id AND a.outcome = 'delivered'
WHERE n.created_at >= $1 AND n.priority = 'bulk'

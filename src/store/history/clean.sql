-- Deletes up to $2 finished notifications older than $1 days, with their
-- deliveries, receipts and what devices reported, oldest first.
WITH old AS (
    SELECT n.id FROM pushrelay.notifications n
     WHERE n.created_at < now() - make_interval(days => $1) AND n.state <> 'pending'
       AND NOT EXISTS (SELECT 1 FROM pushrelay.deliveries d
                        WHERE d.notification_id = n.id AND d.state IN ('pending', 'sending'))
     ORDER BY n.created_at
     LIMIT $2
), gone_deliveries AS (
    DELETE FROM pushrelay.deliveries d USING old WHERE d.notification_id = old.id
    RETURNING d.id
), gone_receipts AS (
    DELETE FROM pushrelay.attempts a USING gone_deliveries g WHERE a.delivery_id = g.id
), gone_device_receipts AS (
    DELETE FROM pushrelay.device_receipts r USING old WHERE r.notification_id = old.id
)
DELETE FROM pushrelay.notifications n USING old WHERE n.id = old.id

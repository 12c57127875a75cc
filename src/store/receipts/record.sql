-- Records what a device reported about a notification: finds its
-- delivery (one per notification and device; $5 limits the apps, NULL for
-- all) and inserts the event once. One row when the delivery exists, with
-- `recorded` false when this event was already reported.
--   $1 notification_id  $2 device_id  $3 event  $4 occurred_at (NULL: now)
WITH delivery AS (
    SELECT id, app FROM pushrelay.deliveries
     WHERE notification_id = $1 AND device_id = $2 AND ($5::text[] IS NULL OR app = ANY($5))
), inserted AS (
    INSERT INTO pushrelay.device_receipts (delivery_id, event, notification_id, app, occurred_at)
    SELECT id, $3, $1, app, COALESCE($4, now()) FROM delivery
    ON CONFLICT (delivery_id, event) DO NOTHING
    RETURNING delivery_id
)
SELECT id AS delivery_id, app, EXISTS (SELECT 1 FROM inserted) AS recorded FROM delivery

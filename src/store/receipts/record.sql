-- Records what a device reported about a notification: finds its
-- delivery (one per notification and device; $5 limits the apps, NULL for
-- all) and inserts the event once. One row when the delivery exists, with
-- `recorded` false when this event was already reported, and the time the
-- stored report says it happened.
--   $1 notification_id  $2 device_id  $3 event  $4 occurred_at (NULL: now)
WITH delivery AS (
    SELECT id, app, campaign_id FROM pushrelay.deliveries
     WHERE notification_id = $1 AND device_id = $2 AND ($5::text[] IS NULL OR app = ANY($5))
), inserted AS (
    INSERT INTO pushrelay.device_receipts (delivery_id, event, notification_id, app, occurred_at, campaign_id)
    SELECT id, $3, $1, app, COALESCE($4, now()), campaign_id FROM delivery
    ON CONFLICT (delivery_id, event) DO NOTHING
    RETURNING delivery_id, occurred_at
)
SELECT d.id AS delivery_id, d.app, i.delivery_id IS NOT NULL AS recorded,
       -- A repeat answers with the first report's time; a report racing
       -- this one (not yet visible) with this one's.
       COALESCE(i.occurred_at,
                (SELECT r.occurred_at FROM pushrelay.device_receipts r
                  WHERE r.delivery_id = d.id AND r.event = $3),
                COALESCE($4, now())) AS occurred_at
  FROM delivery d LEFT JOIN inserted i ON i.delivery_id = d.id

-- What the devices reported about one notification, per delivery.
SELECT delivery_id, event, occurred_at, reported_at
  FROM pushrelay.device_receipts
 WHERE notification_id = $1
 ORDER BY delivery_id, occurred_at, event

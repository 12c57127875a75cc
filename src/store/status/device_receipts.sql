-- What the apps on the devices reported, per delivery, in the order it
-- happened.
SELECT delivery_id, event, occurred_at, reported_at
  FROM pushrelay.device_receipts WHERE delivery_id = ANY($1)
 ORDER BY delivery_id, occurred_at, event

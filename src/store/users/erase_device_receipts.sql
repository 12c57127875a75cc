-- Erasure, step 5: what the devices reported about the erased deliveries
-- ($1) or notifications ($2).
DELETE FROM pushrelay.device_receipts WHERE delivery_id = ANY($1) OR notification_id = ANY($2)

-- Deletes everything of one app: its notifications with their deliveries,
-- receipts and what devices reported, and its devices (the demo starts
-- from a clean slate).
WITH gone_deliveries AS (
    DELETE FROM pushrelay.deliveries WHERE app = $1 RETURNING id
), gone_receipts AS (
    DELETE FROM pushrelay.attempts a USING gone_deliveries g WHERE a.delivery_id = g.id
), gone_device_receipts AS (
    DELETE FROM pushrelay.device_receipts WHERE app = $1
), gone_notifications AS (
    DELETE FROM pushrelay.notifications WHERE app = $1
)
DELETE FROM pushrelay.devices WHERE app = $1

-- Erasure, step 6: the erased devices ($1) in campaigns' audiences. There
-- is no index on device_id alone (the key starts with the campaign), so
-- this reads the targets once, as step 3 reads the deliveries.
DELETE FROM pushrelay.campaign_targets WHERE device_id = ANY($1)

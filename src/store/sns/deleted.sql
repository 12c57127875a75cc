-- Endpoints the reaper deleted: off the queue, and off their devices
-- unless the device registered again meanwhile (its endpoint is then
-- checked before its next publish, and re-made if gone).
--   $1 ARNs  $2 device ids (NULL for queued ones)
WITH dequeued AS (
    DELETE FROM pushrelay.sns_endpoint_deletions WHERE endpoint_arn = ANY($1)
)
UPDATE pushrelay.devices v
   SET sns_endpoint_arn = NULL
  FROM UNNEST($1::text[], $2::bigint[]) AS u(arn, id)
 WHERE v.id = u.id AND v.sns_endpoint_arn = u.arn AND v.invalidated_at IS NOT NULL

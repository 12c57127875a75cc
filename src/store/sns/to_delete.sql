-- The reaper's work, up to $1 endpoints of the SNS routes $2
-- ('app/platform'): those of erased devices, then those of invalidated
-- devices (removed, or their token dead) that still name one.
(SELECT endpoint_arn, app, platform, NULL::bigint AS device_id
   FROM pushrelay.sns_endpoint_deletions
  WHERE app || '/' || platform = ANY($2)
  ORDER BY queued_at
  LIMIT $1)
UNION ALL
(SELECT sns_endpoint_arn, app, platform, id
   FROM pushrelay.devices
  WHERE sns_endpoint_arn IS NOT NULL AND invalidated_at IS NOT NULL
    AND app || '/' || platform = ANY($2)
  LIMIT $1)
LIMIT $1

-- Dead tokens. APNs' 410 timestamp (`since`): a device that re-registered
-- after the token was reported invalid has a fresh registration; keep it.
UPDATE pushrelay.devices v
   SET invalidated_at = now(), invalidated_reason = u.reason
  FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[]) AS u(id, reason, since)
 WHERE v.id = u.id AND v.invalidated_at IS NULL
   AND (u.since IS NULL OR v.updated_at <= u.since)

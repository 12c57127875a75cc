-- Devices' SNS endpoints as a registration or a send left them: stored and
-- marked checked, unless the device's token changed meanwhile (a token
-- replaced while the endpoint was being made: the next send checks again).
--   $1 device ids  $2 the tokens the endpoints hold  $3 endpoint ARNs
UPDATE pushrelay.devices v
   SET sns_endpoint_arn = u.arn, sns_endpoint_stale = false
  FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS u(id, token, arn)
 WHERE v.id = u.id AND v.token = u.token

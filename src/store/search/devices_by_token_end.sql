-- Devices whose token ends with what support was told, in the visible
-- apps. A suffix of the token is a prefix of its reversed token, given as
-- a range [$1, $2) of the text_pattern_ops operators so that
-- devices_token_reversed answers whatever plan the statement gets: a LIKE
-- with a bound pattern is a sequential scan in a generic plan.
--   $1 reversed suffix  $2 the first string after every string it starts
--   $3 visible apps  $4 limit
SELECT id, app, user_id, platform, token, invalidated_at IS NOT NULL AS invalidated
  FROM pushrelay.devices
 WHERE reverse(token) ~>=~ $1 AND reverse(token) ~<~ $2 AND app = ANY($3)
 ORDER BY app, user_id, id
 LIMIT $4

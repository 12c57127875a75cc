SELECT id, app, user_id, platform, token, environment, locale, created_at, updated_at,
       invalidated_at, invalidated_reason
  FROM pushrelay.devices
 WHERE ($1::text IS NULL OR app = $1) AND ($2::text IS NULL OR user_id = $2)
 ORDER BY app, user_id, id

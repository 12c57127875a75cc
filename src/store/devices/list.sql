-- Devices, invalidated ones too, by app and user; $3 limits the apps (an
-- API key's), NULL for every app.
SELECT id, app, user_id, platform, token, environment, locale, timezone, app_version, tags,
       attributes, consent, created_at, updated_at, last_seen_at, invalidated_at,
       invalidated_reason, sns_endpoint_arn
  FROM pushrelay.devices
 WHERE ($1::text IS NULL OR app = $1) AND ($2::text IS NULL OR user_id = $2)
   AND ($3::text[] IS NULL OR app = ANY($3))
 ORDER BY app, user_id, id

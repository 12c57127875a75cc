-- Registers a device, or re-registers it: an existing (app, platform,
-- token) gets the new user, environment, locale and timezone, and is
-- reactivated.
INSERT INTO pushrelay.devices (app, user_id, platform, token, environment, locale, timezone)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (app, platform, token) DO UPDATE
   SET user_id = EXCLUDED.user_id, environment = EXCLUDED.environment,
       locale = EXCLUDED.locale, timezone = EXCLUDED.timezone,
       updated_at = now(), invalidated_at = NULL, invalidated_reason = NULL
RETURNING id

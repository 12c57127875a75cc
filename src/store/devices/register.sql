-- Registers a device, or re-registers it (upsert on app, platform and
-- token), and says which: `xmax = 0` only on a freshly inserted row.
--   $1 app  $2 user_id  $3 platform  $4 token  $5 environment  $6 locale
--   $7 timezone  $8 app_version  $9 tags  $10 attributes  $11 consent
-- A NULL field was not given: a new device takes the column's default, a
-- known one keeps what it had. Environment, locale, timezone and app
-- version describe the phone and stay with the token; tags, attributes and
-- consent describe its user, so a token that moves to another user (a new
-- login on the same phone) starts from the defaults, never with the
-- previous user's consent. Registering reactivates an invalidated token,
-- and has a device's SNS endpoint checked again (it may have been
-- disabled, or deleted while the device was invalidated).
INSERT INTO pushrelay.devices AS v
    (app, user_id, platform, token, environment, locale, timezone, app_version, tags,
     attributes, consent, last_seen_at)
VALUES ($1, $2, $3, $4, COALESCE($5::text, 'production'), COALESCE($6::text, 'en'),
        COALESCE($7::text, 'UTC'), $8::text, COALESCE($9::text[], '{}'),
        COALESCE($10::jsonb, '{}'), COALESCE($11::jsonb, '{}'), now())
ON CONFLICT (app, platform, token) DO UPDATE
   SET user_id = EXCLUDED.user_id,
       environment = COALESCE($5, v.environment),
       locale = COALESCE($6, v.locale),
       timezone = COALESCE($7, v.timezone),
       app_version = COALESCE($8, v.app_version),
       tags = COALESCE($9, CASE WHEN v.user_id = EXCLUDED.user_id THEN v.tags ELSE '{}' END),
       attributes = COALESCE($10, CASE WHEN v.user_id = EXCLUDED.user_id THEN v.attributes ELSE '{}' END),
       consent = COALESCE($11, CASE WHEN v.user_id = EXCLUDED.user_id THEN v.consent ELSE '{}' END),
       last_seen_at = now(), updated_at = now(), invalidated_at = NULL, invalidated_reason = NULL,
       sns_endpoint_stale = true
RETURNING id, app, user_id, platform, token, environment, locale, timezone, app_version, tags,
          attributes, consent, created_at, updated_at, last_seen_at, invalidated_at,
          invalidated_reason, sns_endpoint_arn, xmax = 0 AS created

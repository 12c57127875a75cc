-- Erasure, step 2: the user's devices, deleted, not invalidated. Their
-- SNS endpoints wait for the reaper (which deletes them at SNS too).
WITH erased AS (
    DELETE FROM pushrelay.devices
     WHERE user_id = $1 AND ($2::text[] IS NULL OR app = ANY($2))
    RETURNING id, app, platform, sns_endpoint_arn
), queued AS (
    INSERT INTO pushrelay.sns_endpoint_deletions (endpoint_arn, app, platform)
    SELECT sns_endpoint_arn, app, platform FROM erased WHERE sns_endpoint_arn IS NOT NULL
    ON CONFLICT (endpoint_arn) DO NOTHING
)
SELECT id FROM erased

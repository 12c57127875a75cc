-- Erasure, step 1: the user's notifications ($2: the apps, NULL for all).
-- A notification being fanned out right now is locked: this waits for
-- that fan-out to commit, so the deliveries it made are seen (and erased)
-- by the steps after it.
DELETE FROM pushrelay.notifications
 WHERE user_id = $1 AND ($2::text[] IS NULL OR app = ANY($2))
RETURNING id

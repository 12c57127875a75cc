-- Erasure, step 2: the user's devices, deleted, not invalidated.
DELETE FROM pushrelay.devices
 WHERE user_id = $1 AND ($2::text[] IS NULL OR app = ANY($2))
RETURNING id

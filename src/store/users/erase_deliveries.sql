-- Erasure, step 3: every delivery of the erased notifications ($1) and to
-- the erased devices ($2), those of other users' notifications too (a
-- token that moved, a notification naming device ids). There is no index
-- on device_id (it would cost every fan-out an index insert for a rare
-- request), so this reads the deliveries table once. A delivery being sent
-- right now is deleted too: the worker's result then matches no row.
DELETE FROM pushrelay.deliveries
 WHERE notification_id = ANY($1) OR device_id = ANY($2)
RETURNING id

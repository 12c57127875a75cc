-- Erasure, step 7: the user ($1) on uploaded user lists of the apps ($2,
-- NULL: all).
DELETE FROM pushrelay.user_list_members m
 USING pushrelay.user_lists l
 WHERE m.list_id = l.id AND m.user_id = $1 AND ($2::text[] IS NULL OR l.app = ANY($2))

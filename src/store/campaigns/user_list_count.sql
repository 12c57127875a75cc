-- The list's size, once its members are in.
UPDATE pushrelay.user_lists
   SET users = (SELECT count(*) FROM pushrelay.user_list_members WHERE list_id = $1)
 WHERE id = $1
RETURNING users

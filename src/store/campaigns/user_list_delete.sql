-- A user list and its members, unless a campaign uses it (a list made for
-- one request that was then refused, or for a preview).
WITH list AS (
    DELETE FROM pushrelay.user_lists l
     WHERE l.id = $1
       AND NOT EXISTS (SELECT 1 FROM pushrelay.campaigns c WHERE c.user_list_id = $1)
    RETURNING l.id
)
DELETE FROM pushrelay.user_list_members m USING list WHERE m.list_id = list.id

-- The upload's distinct, non-empty user ids become the list's members.
INSERT INTO pushrelay.user_list_members (list_id, user_id)
SELECT DISTINCT $1::uuid, btrim(user_id) FROM user_list_upload WHERE btrim(user_id) <> ''
ON CONFLICT DO NOTHING

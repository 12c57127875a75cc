-- A user list, filled by COPY into user_list_members afterwards.
INSERT INTO pushrelay.user_lists (app, name) VALUES ($1, $2) RETURNING id, created_at

-- A user list's upload is copied here first (COPY cannot skip duplicates).
-- A blank line arrives as NULL and is dropped with the duplicates.
CREATE TEMP TABLE user_list_upload (user_id text) ON COMMIT DROP

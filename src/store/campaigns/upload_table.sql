-- A user list's upload is copied here first (COPY cannot skip duplicates).
CREATE TEMP TABLE user_list_upload (user_id text NOT NULL) ON COMMIT DROP

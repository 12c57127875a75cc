-- FORCE_NOT_NULL: a blank line is an empty id (dropped with the others),
-- not a NULL that fails the whole upload.
COPY user_list_upload (user_id) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (user_id))

COPY user_list_upload (user_id) FROM STDIN WITH (FORMAT csv)

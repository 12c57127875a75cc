-- An edit: the fields given ($3..), the others kept.
UPDATE pushrelay.campaigns
   SET name = COALESCE($2, name),
       template = CASE WHEN $3 THEN $4 ELSE template END,
       title = CASE WHEN $3 THEN $5 ELSE title END,
       body = CASE WHEN $3 THEN $6 ELSE body END,
       data = CASE WHEN $3 THEN $7 ELSE data END,
       options = CASE WHEN $3 THEN $8 ELSE options END,
       collapse_key = CASE WHEN $3 THEN $9 ELSE collapse_key END,
       throttle_per_minute = CASE WHEN $10 THEN $11 ELSE throttle_per_minute END,
       paced_until = CASE WHEN $10 THEN NULL ELSE paced_until END,
       updated_at = now()
 WHERE id = $1

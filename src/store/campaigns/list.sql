-- (continues columns.sql) An app's campaigns ($1; NULL: any of the apps in
-- $2, NULL: all), newest first, after the cursor ($3 created_at, $4 id).
 WHERE ($1::text IS NULL OR app = $1) AND ($2::text[] IS NULL OR app = ANY($2))
   AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT $5

-- (continues columns.sql) One campaign, if it is of the apps in $2 (NULL: any).
 WHERE id = $1 AND ($2::text[] IS NULL OR app = ANY($2))

-- (continues columns.sql) One campaign, locked for a change: pause,
-- resume, cancel, edit and the pump take turns on it.
 WHERE id = $1 AND ($2::text[] IS NULL OR app = ANY($2))
   FOR UPDATE

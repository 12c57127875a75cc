-- (continues columns.sql) Campaigns not over, and those that ended since
-- $1, newest first, at most $2 (a small table: no index needed).
 WHERE state IN ('scheduled', 'running', 'paused')
    OR COALESCE(cancelled_at, completed_at) >= $1
 ORDER BY created_at DESC, id DESC
 LIMIT $2

-- Deletes up to $1 console sessions that have expired (a lookup already
-- ignores them; this keeps the table to the sessions that can be used).
DELETE FROM pushrelay.console_sessions
 WHERE secret_sha256 IN (
       SELECT secret_sha256 FROM pushrelay.console_sessions
        WHERE expires_at < now()
        LIMIT $1)

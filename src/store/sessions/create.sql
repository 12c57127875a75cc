-- A new console session for key $2, lasting $3 seconds.
INSERT INTO pushrelay.console_sessions (secret_sha256, key_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))

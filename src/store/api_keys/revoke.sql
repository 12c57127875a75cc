-- Revokes the key with id $1 or whose listed prefix is $2; revoking twice
-- keeps the first time.
UPDATE pushrelay.api_keys
   SET revoked_at = COALESCE(revoked_at, now())
 WHERE id = $1 OR prefix = $2
RETURNING id, name, prefix, scopes, apps, rate_per_sec, created_at, last_used_at, revoked_at

SELECT id, name, prefix, scopes, apps, rate_per_sec, created_at, last_used_at, revoked_at
  FROM pushrelay.api_keys
 WHERE $1 OR revoked_at IS NULL
 ORDER BY id

-- The key of a live session: not expired, and its key not revoked (so
-- revoking a key signs its sessions out).
SELECT k.id, k.name, k.prefix, k.scopes, k.apps, k.rate_per_sec, k.created_at, k.last_used_at,
       k.revoked_at
  FROM pushrelay.console_sessions s JOIN pushrelay.api_keys k ON k.id = s.key_id
 WHERE s.secret_sha256 = $1 AND s.expires_at > now() AND k.revoked_at IS NULL

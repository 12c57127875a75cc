-- The live key whose secret hashes to $1; marks it used (at most once a
-- minute, so a busy key does not write on every lookup).
WITH found AS (
    SELECT id, name, prefix, scopes, apps, rate_per_sec, created_at, last_used_at, revoked_at
      FROM pushrelay.api_keys
     WHERE secret_sha256 = $1 AND revoked_at IS NULL
), touched AS (
    UPDATE pushrelay.api_keys k SET last_used_at = now()
      FROM found
     WHERE k.id = found.id AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
)
SELECT * FROM found

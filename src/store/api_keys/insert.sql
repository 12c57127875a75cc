-- A new API key; only the secret's SHA-256 is stored.
INSERT INTO pushrelay.api_keys (name, prefix, secret_sha256, scopes, apps, rate_per_sec)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, name, prefix, scopes, apps, rate_per_sec, created_at, last_used_at, revoked_at

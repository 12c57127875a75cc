-- The support console: sessions of signed-in API keys, search by the end
-- of a device token, and per-minute attempt outcomes for the overview.

-- A console session: the SHA-256 of the cookie's secret (the secret itself
-- is never stored) and the API key that signed in. A session is only as
-- good as its key: the lookup joins api_keys and ignores revoked keys, so
-- revoking a key ends its sessions too. No foreign key, like every table
-- here (migration 0002): the cleaner deletes expired sessions.
CREATE TABLE pushrelay.console_sessions (
    secret_sha256 bytea       PRIMARY KEY,
    key_id        bigint      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON pushrelay.console_sessions (expires_at);

-- Support is told "the token ends in …a1b2c3": a suffix search is a prefix
-- search of the reversed token, which a pattern-ops index answers.
CREATE INDEX devices_token_reversed
    ON pushrelay.devices (reverse(token) text_pattern_ops);

-- Attempt outcomes per minute, app, platform and reason (the bounded
-- reason vocabulary of pushrelay_attempts_total), added to in the same
-- transaction that writes the attempts: the overview reads the last hour
-- from at most 60 rows per key instead of counting the attempts table.
CREATE TABLE pushrelay.attempt_counts (
    minute   timestamptz NOT NULL,
    app      text        NOT NULL,
    platform text        NOT NULL,
    outcome  text        NOT NULL,
    reason   text        NOT NULL,
    count    bigint      NOT NULL,
    PRIMARY KEY (minute, app, platform, outcome, reason)
);

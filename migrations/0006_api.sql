-- The HTTP API: scoped API keys, the device fields mobile backends
-- register, cancellation, idempotent enqueues that can tell a repeat from
-- a conflicting reuse, and what devices report back (received, displayed,
-- opened).

-- API keys. Only a SHA-256 of the secret is kept: the secrets are 256
-- random bits, so a fast hash is as safe as a password hash here and keeps
-- the lookup to one index probe. `prefix` is the key's first characters,
-- shown in listings and logs to tell keys apart.
CREATE TABLE pushrelay.api_keys (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL,
    prefix        text        NOT NULL,
    secret_sha256 bytea       NOT NULL UNIQUE,
    scopes        text[]      NOT NULL
        CONSTRAINT api_keys_scopes_known
            CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['send', 'read', 'devices', 'admin']),
    -- NULL: every app.
    apps          text[],
    -- Requests per second this key may make; NULL: api.rate_per_key.
    rate_per_sec  integer     CONSTRAINT api_keys_rate_positive CHECK (rate_per_sec > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- What a mobile backend knows about a device. `consent` maps a category
-- (e.g. "marketing") to true or false; a category not named is not
-- consented to for anything but urgent alerts.
ALTER TABLE pushrelay.devices
    ADD COLUMN app_version  text,
    ADD COLUMN tags         text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN attributes   jsonb       NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT devices_attributes_is_an_object CHECK (jsonb_typeof(attributes) = 'object'),
    ADD COLUMN consent      jsonb       NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT devices_consent_is_an_object CHECK (jsonb_typeof(consent) = 'object'),
    ADD COLUMN last_seen_at timestamptz;

-- A user's devices, invalidated ones too (support's view, erasure).
CREATE INDEX devices_by_user ON pushrelay.devices (user_id, app);

-- `request_sha256`: a digest of the request an API enqueue came from, so
-- the same idempotency key with a different body is refused rather than
-- answered with the first notification. NULL for rows a producer inserted.
ALTER TABLE pushrelay.notifications
    ADD COLUMN request_sha256 bytea,
    ADD COLUMN cancelled_at   timestamptz;

-- A user's notifications, newest first (cursor pagination).
CREATE INDEX notifications_by_user ON pushrelay.notifications (user_id, created_at DESC, id DESC)
    WHERE user_id IS NOT NULL;

-- Cancellation: a pending delivery becomes `cancelled`; one being sent
-- keeps its try, and `cancelled_at` stops it from being retried.
ALTER TABLE pushrelay.deliveries ADD COLUMN cancelled_at timestamptz;
ALTER TABLE pushrelay.deliveries DROP CONSTRAINT deliveries_state_known;
ALTER TABLE pushrelay.deliveries ADD CONSTRAINT deliveries_state_known
    CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'token_dead', 'expired', 'cancelled'))
    NOT VALID;
ALTER TABLE pushrelay.deliveries VALIDATE CONSTRAINT deliveries_state_known;

-- What the app on the device reported: one row per delivery and event,
-- so a repeated report changes nothing.
CREATE TABLE pushrelay.device_receipts (
    delivery_id     bigint      NOT NULL,
    event           text        NOT NULL
        CONSTRAINT device_receipts_event_known CHECK (event IN ('received', 'displayed', 'opened')),
    notification_id uuid        NOT NULL,
    app             text        NOT NULL,
    -- When the device says it happened, and when it told us.
    occurred_at     timestamptz NOT NULL,
    reported_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery_id, event)
);
CREATE INDEX device_receipts_by_notification ON pushrelay.device_receipts (notification_id);

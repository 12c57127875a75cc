-- pushrelay schema: devices, the notification outbox, per-device deliveries
-- and the attempt log (receipts). Everything lives in its own schema so it
-- can share a database with the producing service without name clashes.
CREATE SCHEMA IF NOT EXISTS pushrelay;

CREATE TABLE pushrelay.devices (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app                text        NOT NULL,
    user_id            text        NOT NULL,
    platform           text        NOT NULL
        CONSTRAINT devices_platform_is_ios_or_android CHECK (platform IN ('ios', 'android')),
    token              text        NOT NULL
        CONSTRAINT devices_token_is_printable_and_short
            CHECK (token ~ '^[\x21-\x7e]+$' AND octet_length(token) <= 4096),
    -- APNs tokens belong to either the production or the sandbox gateway.
    environment        text        NOT NULL DEFAULT 'production'
        CONSTRAINT devices_environment_is_production_or_sandbox
            CHECK (environment IN ('production', 'sandbox')),
    locale             text        NOT NULL DEFAULT 'en',
    timezone           text        NOT NULL DEFAULT 'UTC',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    invalidated_at     timestamptz,
    invalidated_reason text,
    CONSTRAINT devices_token_unique_per_app_platform UNIQUE (app, platform, token)
);

-- Fan-out looks up the active devices of a user.
CREATE INDEX devices_active_by_user ON pushrelay.devices (app, user_id)
    WHERE invalidated_at IS NULL;

CREATE TABLE pushrelay.notifications (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    app             text        NOT NULL,
    -- Recipient: exactly one of a user id (all of the user's active devices)
    -- or an explicit list of device ids.
    user_id         text,
    device_ids      bigint[],
    -- Content: a template name rendered with `data`, or inline title/body
    -- with `data` sent as the custom payload.
    template        text,
    title           text,
    body            text,
    data            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    priority        text        NOT NULL DEFAULT 'urgent',
    collapse_key    text,
    ttl_seconds     integer     NOT NULL DEFAULT 86400,
    send_at         timestamptz NOT NULL DEFAULT now(),
    idempotency_key text,
    -- pending -> dispatched | expired | no_devices | failed | cancelled
    state           text        NOT NULL DEFAULT 'pending',
    state_reason    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    fanned_out_at   timestamptz,

    CONSTRAINT notifications_recipient_is_user_or_devices
        CHECK ((user_id IS NULL) <> (device_ids IS NULL)),
    CONSTRAINT notifications_needs_template_or_body
        CHECK (template IS NOT NULL OR body IS NOT NULL),
    CONSTRAINT notifications_data_must_be_a_json_object
        CHECK (jsonb_typeof(data) = 'object'),
    CONSTRAINT notifications_data_at_most_4096_bytes
        CHECK (octet_length(data::text) <= 4096),
    CONSTRAINT notifications_priority_is_urgent_or_bulk
        CHECK (priority IN ('urgent', 'bulk')),
    CONSTRAINT notifications_collapse_key_at_most_64_bytes
        CHECK (octet_length(collapse_key) <= 64),
    CONSTRAINT notifications_ttl_between_0_and_28_days
        CHECK (ttl_seconds BETWEEN 0 AND 2419200),
    CONSTRAINT notifications_state_known
        CHECK (state IN ('pending', 'dispatched', 'expired', 'no_devices', 'failed', 'cancelled')),
    CONSTRAINT notifications_idempotency_key_unique_per_app UNIQUE (app, idempotency_key)
);

-- The fan-out claim: due pending notifications, oldest first. Partial, so the
-- index only holds the (small) backlog, not history.
CREATE INDEX notifications_pending_due ON pushrelay.notifications (send_at)
    WHERE state = 'pending';
-- The retention cleaner walks history oldest first.
CREATE INDEX notifications_created_at ON pushrelay.notifications (created_at);

CREATE TABLE pushrelay.deliveries (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id     uuid        NOT NULL REFERENCES pushrelay.notifications (id) ON DELETE CASCADE,
    device_id           bigint      NOT NULL REFERENCES pushrelay.devices (id) ON DELETE CASCADE,
    -- Copied from the device/notification so a claim needs no join.
    app                 text        NOT NULL,
    platform            text        NOT NULL,
    priority            text        NOT NULL,
    expires_at          timestamptz NOT NULL,
    -- pending -> sending -> delivered | failed | token_dead | expired,
    -- or back to pending with a later next_attempt_at (retry).
    state               text        NOT NULL DEFAULT 'pending'
        CONSTRAINT deliveries_state_known
            CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'token_dead', 'expired')),
    attempts            integer     NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_owner         text,
    lease_expires_at    timestamptz,
    provider_message_id text,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_one_per_notification_and_device UNIQUE (notification_id, device_id)
);

-- The dispatch claim: due pending deliveries per platform lane, urgent ones
-- claimed before bulk ones so a campaign never delays a one-time code.
CREATE INDEX deliveries_pending_due ON pushrelay.deliveries (platform, priority, next_attempt_at)
    WHERE state = 'pending';
-- The rescuer: leases held by processes that may have died.
CREATE INDEX deliveries_leased ON pushrelay.deliveries (lease_expires_at)
    WHERE state = 'sending';

-- Receipts: one row per send attempt, written once and never updated.
CREATE TABLE pushrelay.attempts (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id         bigint      NOT NULL REFERENCES pushrelay.deliveries (id) ON DELETE CASCADE,
    attempt             integer     NOT NULL,
    worker              text        NOT NULL,
    provider            text        NOT NULL,
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz NOT NULL,
    latency_ms          integer     NOT NULL,
    -- delivered | transient | permanent | token_dead | config_error | lost
    outcome             text        NOT NULL,
    status_code         integer,
    reason              text,
    provider_message_id text,
    -- When the delivery will be tried again, if it will.
    retry_at            timestamptz
);

CREATE INDEX attempts_by_delivery ON pushrelay.attempts (delivery_id);

-- Wake-ups. Statement-level triggers send one NOTIFY per producing statement
-- (and Postgres folds identical notifications within a transaction), so a
-- 1000-row INSERT costs one signal, not 1000.
CREATE FUNCTION pushrelay.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pushrelay_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER notifications_wake_fanout
    AFTER INSERT ON pushrelay.notifications
    FOR EACH STATEMENT EXECUTE FUNCTION pushrelay.notify_outbox();

CREATE FUNCTION pushrelay.notify_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pushrelay_deliveries', '');
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_wake_dispatch
    AFTER INSERT ON pushrelay.deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION pushrelay.notify_deliveries();

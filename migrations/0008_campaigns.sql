-- Campaigns: marketing's sends to a segment of an app's devices, scheduled
-- (at a time, or at a wall-clock time in each device's timezone),
-- deferred out of the app's quiet hours, throttled, pausable and
-- cancellable, with progress counted from the rows themselves.
--
-- A campaign never becomes a million outbox rows at once. When it starts,
-- its audience is evaluated in chunks into `campaign_targets` (one row per
-- device, with the moment it is due and the moment it expires); a pump
-- turns due targets into notifications at the throttle's pace, a batch at
-- a time, and the ordinary bulk fan-out sends them.

-- A key may be limited to campaigns.
ALTER TABLE pushrelay.api_keys DROP CONSTRAINT api_keys_scopes_known;
ALTER TABLE pushrelay.api_keys ADD CONSTRAINT api_keys_scopes_known
    CHECK (cardinality(scopes) > 0
           AND scopes <@ ARRAY['send', 'read', 'devices', 'admin', 'campaigns'])
    NOT VALID;
ALTER TABLE pushrelay.api_keys VALIDATE CONSTRAINT api_keys_scopes_known;

-- An uploaded list of user ids (CSV, up to millions), reusable by several
-- campaigns of its app.
CREATE TABLE pushrelay.user_lists (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    app        text        NOT NULL,
    name       text        NOT NULL,
    users      bigint      NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE pushrelay.user_list_members (
    list_id uuid NOT NULL,
    user_id text NOT NULL,
    PRIMARY KEY (list_id, user_id)
);

CREATE TABLE pushrelay.campaigns (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    app                 text        NOT NULL,
    name                text        NOT NULL,
    -- The content, as a notification's (checked by the same rules when
    -- the campaign is created or edited).
    template            text,
    title               text,
    body                text,
    data                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    options             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    collapse_key        text,
    priority            text        NOT NULL DEFAULT 'bulk'
        CONSTRAINT campaigns_priority_known CHECK (priority IN ('urgent', 'bulk')),
    -- Each device's message lives this long after the moment it was due
    -- (its local time for a local-time campaign); quiet hours and the
    -- throttle never push a send past it.
    ttl_seconds         integer     NOT NULL
        CONSTRAINT campaigns_ttl_between_1_second_and_28_days CHECK (ttl_seconds BETWEEN 1 AND 2419200),
    -- A device must consent to this category (devices.consent->>category
    -- = 'true') to be sent to; NULL: no consent needed.
    category            text,
    -- The audience: a segment over device fields (see campaigns.rs),
    -- an uploaded user list, or both (intersected).
    segment             jsonb       NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT campaigns_segment_is_an_object CHECK (jsonb_typeof(segment) = 'object'),
    user_list_id        uuid,
    -- The schedule: due at `send_at`, or at `local_time` on `local_date`
    -- in each device's timezone. `starts_at` is when the audience is
    -- evaluated: `send_at`, or the first moment anywhere on Earth reaches
    -- the local time (UTC+14).
    send_at             timestamptz,
    local_date          date,
    local_time          time,
    starts_at           timestamptz NOT NULL,
    -- Devices per minute; NULL: as fast as the bulk share allows.
    throttle_per_minute integer
        CONSTRAINT campaigns_throttle_positive CHECK (throttle_per_minute > 0),
    state               text        NOT NULL DEFAULT 'scheduled'
        CONSTRAINT campaigns_state_known
            CHECK (state IN ('scheduled', 'running', 'paused', 'completed', 'cancelled')),
    -- The throttle's theoretical arrival time (GCRA): every device queued
    -- moves it 60 / throttle seconds on. Kept in the row so every process
    -- pumping the campaign shares one pace.
    paced_until         timestamptz,
    -- Streaming evaluation of the audience: devices up to
    -- `audience_max_device_id` (the newest when the campaign started;
    -- devices registered later are not added) are evaluated in id order;
    -- `evaluated_through` is how far.
    audience_max_device_id bigint,
    evaluated_through   bigint,
    created_by          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    paused_at           timestamptz,
    cancelled_at        timestamptz,
    completed_at        timestamptz,
    CONSTRAINT campaigns_schedule_is_a_time_or_a_local_time
        CHECK ((send_at IS NULL) = (local_time IS NOT NULL) AND (local_date IS NULL) = (local_time IS NULL))
);
-- The pump's look-up of the campaigns it has work for.
CREATE INDEX campaigns_active ON pushrelay.campaigns (starts_at)
    WHERE state IN ('scheduled', 'running');
CREATE INDEX campaigns_by_app ON pushrelay.campaigns (app, created_at DESC);

-- One row per device of the audience. `state`: pending (waiting for its
-- moment or for the throttle) -> queued (a notification was created for
-- it), or no_consent (skipped: no consent for the category), expired
-- (its moment plus the TTL passed before the throttle or quiet hours let
-- it go), cancelled.
CREATE TABLE pushrelay.campaign_targets (
    campaign_id     uuid        NOT NULL,
    device_id       bigint      NOT NULL,
    user_id         text        NOT NULL,
    platform        text        NOT NULL,
    timezone        text        NOT NULL,
    state           text        NOT NULL
        CONSTRAINT campaign_targets_state_known
            CHECK (state IN ('pending', 'queued', 'no_consent', 'expired', 'cancelled')),
    due_at          timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    notification_id uuid,
    queued_at       timestamptz,
    PRIMARY KEY (campaign_id, device_id)
);
CREATE INDEX campaign_targets_due ON pushrelay.campaign_targets (campaign_id, due_at)
    WHERE state = 'pending';
-- Targets whose TTL ran out while they waited (expire.sql): without it,
-- finding none would read every waiting target's row at every step.
CREATE INDEX campaign_targets_expiring ON pushrelay.campaign_targets (campaign_id, expires_at)
    WHERE state = 'pending';
ALTER TABLE pushrelay.campaign_targets SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05);

-- A campaign's notifications name their user (support's view of a user
-- lists them) and the devices targeted: the only rows allowed to carry
-- both. Fan-out sends to the devices named.
ALTER TABLE pushrelay.notifications ADD COLUMN campaign_id uuid;
ALTER TABLE pushrelay.notifications DROP CONSTRAINT notifications_recipient_is_user_or_devices;
ALTER TABLE pushrelay.notifications ADD CONSTRAINT notifications_recipient_is_user_or_devices
    CHECK ((user_id IS NULL) <> (device_ids IS NULL) OR (campaign_id IS NOT NULL AND device_ids IS NOT NULL))
    NOT VALID;
ALTER TABLE pushrelay.notifications VALIDATE CONSTRAINT notifications_recipient_is_user_or_devices;
-- The pump keeps a campaign's not-yet-fanned-out backlog short; pause and
-- cancel find it here.
CREATE INDEX notifications_campaign_pending ON pushrelay.notifications (campaign_id)
    WHERE state = 'pending' AND campaign_id IS NOT NULL;
-- Progress finds here the few that ended without fan-out making their
-- deliveries (expired or cancelled while waiting, every device gone).
CREATE INDEX notifications_campaign_unsent ON pushrelay.notifications (campaign_id)
    WHERE state IN ('expired', 'cancelled', 'no_devices', 'failed') AND campaign_id IS NOT NULL;

-- Deliveries carry their campaign (copied at fan-out, like app and
-- platform) so progress is counted from one index.
ALTER TABLE pushrelay.deliveries ADD COLUMN campaign_id uuid;
CREATE INDEX deliveries_by_campaign ON pushrelay.deliveries (campaign_id, platform, state)
    WHERE campaign_id IS NOT NULL;

-- "5.10.2" > "5.9": a version as an array of its numeric parts, for app
-- version ranges. Non-numeric suffixes ("-beta") are ignored, and so are
-- trailing zero parts: "5.10.0" is "5.10", inside a range up to "5.10"
-- (as arrays, [5,10,0] > [5,10]). A device that never reported its
-- version (NULL) is in no range.
CREATE FUNCTION pushrelay.version_key(v text) RETURNS numeric[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
    RETURN ARRAY(SELECT COALESCE(substring(p FROM '^[0-9]{1,30}'), '0')::numeric
                   FROM unnest(string_to_array(
                        regexp_replace(split_part(v, '-', 1), '(\.0+)+$', ''), '.')) p);

-- The first moment at or after `at` outside the quiet hours [qstart,
-- qend) in the timezone `tz` (a window across midnight when qstart >
-- qend). `at` itself when it is not quiet, or when there are no quiet
-- hours.
CREATE FUNCTION pushrelay.after_quiet_hours(at timestamptz, tz text, qstart time, qend time)
    RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE
        WHEN qstart IS NULL OR qend IS NULL OR qstart = qend THEN at
        WHEN qstart < qend THEN
            CASE WHEN (at AT TIME ZONE tz)::time >= qstart AND (at AT TIME ZONE tz)::time < qend
                 THEN ((at AT TIME ZONE tz)::date + qend) AT TIME ZONE tz
                 ELSE at END
        ELSE
            CASE WHEN (at AT TIME ZONE tz)::time >= qstart
                 THEN ((at AT TIME ZONE tz)::date + 1 + qend) AT TIME ZONE tz
                 WHEN (at AT TIME ZONE tz)::time < qend
                 THEN ((at AT TIME ZONE tz)::date + qend) AT TIME ZONE tz
                 ELSE at END
        END;

-- A campaign's "opened" count, without a probe per delivery.
ALTER TABLE pushrelay.device_receipts ADD COLUMN campaign_id uuid;
CREATE INDEX device_receipts_by_campaign ON pushrelay.device_receipts (campaign_id, event)
    WHERE campaign_id IS NOT NULL;

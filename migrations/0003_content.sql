-- The content model: per-notification content options (push type, badge,
-- sound, silent pushes, ...) as one JSON object, checked at insert time
-- like every other column, and FCM's reserved data keys refused before a
-- notification is ever queued.
--
-- One jsonb column rather than a column per option: a producer's INSERT
-- names only the options it uses, and a new option needs no migration.
-- The trigger below gives what a CHECK constraint would (refused inside
-- the producer's transaction) plus an error that names the offending key.

ALTER TABLE pushrelay.notifications
    ADD COLUMN options jsonb NOT NULL DEFAULT '{}'::jsonb;

-- A silent (data-only) push needs no body.
ALTER TABLE pushrelay.notifications DROP CONSTRAINT notifications_needs_template_or_body;
ALTER TABLE pushrelay.notifications ADD CONSTRAINT notifications_needs_template_or_body
    CHECK (template IS NOT NULL OR body IS NOT NULL
           OR COALESCE(options->>'data_only' = 'true' OR options->>'push_type' = 'background', false));

CREATE FUNCTION pushrelay.check_notification_content() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k text;
    v jsonb;
    t text;
    problem text;
BEGIN
    -- FCM: "data ... must not contain reserved words" (from, message_type,
    -- any word starting with google or gcm); notification is the legacy
    -- message's own block.
    IF jsonb_typeof(NEW.data) = 'object' THEN
        FOR k IN SELECT jsonb_object_keys(NEW.data) LOOP
            IF lower(k) IN ('from', 'message_type', 'notification')
               OR lower(k) LIKE 'google%' OR lower(k) LIKE 'gcm%' THEN
                RAISE EXCEPTION 'data key % is reserved by FCM (from, message_type, notification, and keys starting with google or gcm are); rename it', quote_literal(k)
                    USING ERRCODE = 'check_violation',
                          CONSTRAINT = 'notifications_data_no_reserved_keys',
                          TABLE = 'notifications', SCHEMA = 'pushrelay';
            END IF;
        END LOOP;
    END IF;

    IF jsonb_typeof(NEW.options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object like {"badge": 1}, not %', NEW.options
            USING ERRCODE = 'check_violation', CONSTRAINT = 'notifications_options_valid',
                  TABLE = 'notifications', SCHEMA = 'pushrelay';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(NEW.options) LOOP
        t := jsonb_typeof(v);
        problem := CASE
            WHEN k = 'push_type' THEN
                CASE WHEN t = 'string' AND v #>> '{}' IN ('alert', 'background', 'voip', 'complication',
                        'fileprovider', 'location', 'liveactivity', 'pushtotalk', 'mdm') THEN NULL
                     ELSE 'must be one of alert, background, voip, complication, fileprovider, location, liveactivity, pushtotalk, mdm' END
            WHEN k IN ('badge', 'notification_count') THEN
                -- Nested CASEs: the cast runs only on a number.
                CASE WHEN t <> 'number' THEN 'must be a whole number >= 0'
                     WHEN (v #>> '{}')::numeric >= 0
                          AND (v #>> '{}')::numeric = trunc((v #>> '{}')::numeric)
                          AND (v #>> '{}')::numeric <= 2147483647 THEN NULL
                     ELSE 'must be a whole number >= 0' END
            WHEN k = 'sound' THEN
                CASE WHEN t = 'string' THEN NULL
                     WHEN t <> 'object' OR jsonb_typeof(v->'volume') IS DISTINCT FROM 'number' THEN
                          'must be a sound name, "none", or {"critical": 1, "name": "default", "volume": 0.0..1.0}'
                     WHEN (SELECT array_agg(x ORDER BY x) FROM jsonb_object_keys(v) x) = '{critical,name,volume}'
                          AND v->'critical' = '1'::jsonb AND jsonb_typeof(v->'name') = 'string'
                          AND (v->>'volume')::numeric BETWEEN 0 AND 1 THEN NULL
                     ELSE 'must be a sound name, "none", or {"critical": 1, "name": "default", "volume": 0.0..1.0}' END
            WHEN k IN ('mutable_content', 'content_available', 'data_only') THEN
                CASE WHEN t = 'boolean' THEN NULL ELSE 'must be true or false' END
            WHEN k = 'interruption_level' THEN
                CASE WHEN t = 'string' AND v #>> '{}' IN ('passive', 'active', 'time-sensitive', 'critical') THEN NULL
                     ELSE 'must be one of passive, active, time-sensitive, critical' END
            WHEN k = 'relevance_score' THEN
                CASE WHEN t <> 'number' THEN 'must be a number between 0 and 1'
                     WHEN (v #>> '{}')::numeric BETWEEN 0 AND 1 THEN NULL
                     ELSE 'must be a number between 0 and 1' END
            WHEN k = 'color' THEN
                CASE WHEN t = 'string' AND v #>> '{}' ~ '^#[0-9a-fA-F]{6}$' THEN NULL
                     ELSE 'must be #rrggbb' END
            WHEN k = 'image' THEN
                CASE WHEN t = 'string' AND v #>> '{}' LIKE 'https://%' THEN NULL
                     ELSE 'must be an https:// URL' END
            WHEN k IN ('subtitle', 'thread_id', 'category', 'target_content_id', 'channel_id',
                       'icon', 'analytics_label') THEN
                CASE WHEN t = 'string' THEN NULL ELSE 'must be a string' END
            ELSE 'is not a known option (push_type, subtitle, badge, sound, thread_id, category, mutable_content, content_available, interruption_level, relevance_score, target_content_id, image, channel_id, icon, color, notification_count, analytics_label, data_only)'
        END;
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'options key % %; got %', quote_literal(k), problem, v
                USING ERRCODE = 'check_violation', CONSTRAINT = 'notifications_options_valid',
                      TABLE = 'notifications', SCHEMA = 'pushrelay';
        END IF;
    END LOOP;
    -- FCM analytics labels: "^[a-zA-Z0-9-_.~%]{1,50}$".
    IF NEW.options ? 'analytics_label' AND NOT (NEW.options->>'analytics_label') ~ '^[a-zA-Z0-9._~%-]{1,50}$' THEN
        RAISE EXCEPTION 'options key ''analytics_label'' must match ^[a-zA-Z0-9-_.~%%]{1,50}$ (FCM''s rule); got %', NEW.options->'analytics_label'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'notifications_options_valid',
                  TABLE = 'notifications', SCHEMA = 'pushrelay';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER notifications_check_content
    BEFORE INSERT OR UPDATE OF data, options ON pushrelay.notifications
    FOR EACH ROW EXECUTE FUNCTION pushrelay.check_notification_content();

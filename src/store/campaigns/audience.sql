-- A campaign's audience: the app's active devices on a platform it sends
-- to that match every filter given (NULL: no filter), as the head of a
-- statement (preview.sql and evaluate.sql continue it). A device's
-- timezone that PostgreSQL does not know counts as UTC.
--   $1 app  $2 'app/platform' routes  $3 device ids above  $4 up to (NULL: all)
--   $5 platforms  $6 environments  $7 locales (lowercase, '-')  $8 timezones
--   $9 lowest app version  $10 highest app version  $11 tags (all of)
--   $12 tags (any of)  $13 tags (none of)  $14 attributes (contained)
--   $15 seen within seconds  $16 user list  $17 consent category  $18 now
WITH zones AS MATERIALIZED (
    SELECT name FROM pg_timezone_names
), matched AS (
    SELECT d.id, d.user_id, d.platform,
           CASE WHEN d.timezone IN (SELECT name FROM zones) THEN d.timezone ELSE 'UTC' END AS tz,
           -- A category the device never answered is not consented to
           -- (NULL would count neither as reached nor as skipped).
           ($17::text IS NULL OR COALESCE(d.consent ->> $17 = 'true', false)) AS consented
      FROM pushrelay.devices d
     WHERE d.app = $1 AND d.invalidated_at IS NULL
       AND d.app || '/' || d.platform = ANY($2)
       AND d.id > $3 AND ($4::bigint IS NULL OR d.id <= $4)
       AND ($5::text[] IS NULL OR d.platform = ANY($5))
       AND ($6::text[] IS NULL OR d.environment = ANY($6))
       AND ($7::text[] IS NULL
            OR lower(replace(d.locale, '_', '-')) = ANY($7)
            OR lower(split_part(replace(d.locale, '_', '-'), '-', 1)) = ANY($7))
       AND ($8::text[] IS NULL OR d.timezone = ANY($8))
       AND ($9::text IS NULL OR pushrelay.version_key(d.app_version) >= pushrelay.version_key($9))
       AND ($10::text IS NULL OR pushrelay.version_key(d.app_version) <= pushrelay.version_key($10))
       AND ($11::text[] IS NULL OR d.tags @> $11)
       AND ($12::text[] IS NULL OR d.tags && $12)
       AND ($13::text[] IS NULL OR NOT d.tags && $13)
       AND ($14::jsonb IS NULL OR d.attributes @> $14)
       AND ($15::bigint IS NULL OR d.last_seen_at >= $18::timestamptz - $15::bigint * interval '1 second')
       AND ($16::uuid IS NULL OR EXISTS (
               SELECT 1 FROM pushrelay.user_list_members m
                WHERE m.list_id = $16 AND m.user_id = d.user_id))
)

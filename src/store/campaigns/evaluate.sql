-- (continues audience.sql) One chunk of a starting campaign's audience
-- becomes its targets: each device due at the campaign's moment (or at
-- the local time in its own timezone), moved out of the app's quiet hours
-- for bulk sends, expiring the TTL after the moment it was due for. A
-- device without consent is kept as `no_consent` (counted, never sent);
-- one whose quiet hours outlast its TTL is `expired` at once.
--   $19 campaign  $20 send at  $21 local date  $22 local time  $23 TTL (s)
--   $24 quiet hours start  $25 end (NULL: none, or an urgent campaign)
INSERT INTO pushrelay.campaign_targets
    (campaign_id, device_id, user_id, platform, timezone, state, due_at, expires_at)
SELECT $19, m.id, m.user_id, m.platform, m.tz,
       CASE WHEN NOT m.consented THEN 'no_consent'
            WHEN t.due_at >= t.expires_at THEN 'expired'
            ELSE 'pending' END,
       t.due_at, t.expires_at
  FROM matched m
 CROSS JOIN LATERAL (
       SELECT pushrelay.after_quiet_hours(n.at, m.tz, $24::time, $25::time) AS due_at,
              n.at + $23::int * interval '1 second' AS expires_at
         FROM (SELECT CASE WHEN $22::time IS NULL THEN $20::timestamptz
                           ELSE ($21::date + $22::time) AT TIME ZONE m.tz END AS at) n
       ) t
ON CONFLICT (campaign_id, device_id) DO NOTHING

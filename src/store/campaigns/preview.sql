-- (continues audience.sql) How many devices and users the audience
-- reaches per platform and in all (the row with a NULL platform), how many
-- devices it skips for want of consent, and the most devices due at one
-- moment (all of them, or one timezone's wave of a local-time campaign):
-- what the throttle must get through within the TTL.
--   $19 local date  $20 local time (NULL: one moment for all)
SELECT m.platform,
       count(*) FILTER (WHERE m.consented) AS devices,
       count(DISTINCT m.user_id) FILTER (WHERE m.consented) AS users,
       count(*) FILTER (WHERE NOT m.consented) AS no_consent,
       (SELECT COALESCE(max(n), 0) FROM (
            SELECT count(*) AS n FROM matched w WHERE w.consented
             GROUP BY CASE WHEN $20::time IS NULL THEN NULL
                           ELSE ($19::date + $20::time) AT TIME ZONE w.tz END) waves
       ) AS largest_wave
  FROM matched m
 GROUP BY GROUPING SETS ((m.platform), ())

-- A user id, exactly, in each visible app where it has devices (invalidated
-- ones too) or notifications, with how many of each. devices_by_user and
-- notifications_by_user (user_id first) answer.
--   $1 user id  $2 visible apps
WITH devices AS (
    SELECT app, count(*) AS devices
      FROM pushrelay.devices
     WHERE user_id = $1 AND app = ANY($2)
     GROUP BY app
), notifications AS (
    SELECT app, count(*) AS notifications
      FROM pushrelay.notifications
     WHERE user_id = $1 AND app = ANY($2)
     GROUP BY app
)
SELECT $1::text AS user_id, app, COALESCE(d.devices, 0) AS devices,
       COALESCE(n.notifications, 0) AS notifications
  FROM devices d FULL JOIN notifications n USING (app)
 ORDER BY app

-- A user's notifications, newest first, one page: keyset pagination on
-- notifications_by_user (user_id, created_at DESC, id DESC) after the
-- cursor ($3, $4), of the apps in $2 (NULL: every app). $5 is the page
-- size plus one, so the caller knows whether another page follows.
SELECT n.id, n.app, n.state, n.priority, n.template, n.title, n.created_at, n.send_at,
       COALESCE((SELECT jsonb_object_agg(s.state, s.n)
                   FROM (SELECT d.state, count(*) AS n FROM pushrelay.deliveries d
                          WHERE d.notification_id = n.id GROUP BY d.state) s),
                '{}'::jsonb) AS deliveries
  FROM pushrelay.notifications n
 WHERE n.user_id = $1
   AND ($2::text[] IS NULL OR n.app = ANY($2))
   AND ($3::timestamptz IS NULL OR (n.created_at, n.id) < ($3, $4::uuid))
 ORDER BY n.created_at DESC, n.id DESC
 LIMIT $5

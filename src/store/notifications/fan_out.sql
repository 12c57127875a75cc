-- Fan-out of one priority's due notifications, in one statement: claim up
-- to $1 of them (the row locks are the lease until commit), insert one
-- delivery per active device on a platform its app sends to, already
-- leased to this process ($4) as its first try, settle every claimed
-- notification, and return per notification what its deliveries need to
-- be sent. Data-modifying CTEs share one snapshot, so the deliveries per
-- notification come from `inserted`, not from re-reading the table.
--   $1 batch size  $2 configured apps  $3 'app/platform' routes
--   $4 worker id   $5 priority
WITH claimed AS (
    SELECT id, app, user_id, device_ids, priority, template, title, body, data, collapse_key,
           send_at + make_interval(secs => ttl_seconds) AS expires_at,
           app = ANY($2) AS known
      FROM pushrelay.notifications
     WHERE state = 'pending' AND priority = $5 AND send_at <= now()
     ORDER BY send_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), targets AS (
    SELECT c.id AS notification_id, d.id AS device_id, d.platform, d.token, d.environment, d.locale
      FROM claimed c
      JOIN pushrelay.devices d ON d.app = c.app AND d.user_id = c.user_id
     WHERE c.known AND c.expires_at > now() AND c.user_id IS NOT NULL
       AND d.invalidated_at IS NULL AND d.app || '/' || d.platform = ANY($3)
    UNION ALL
    SELECT c.id, d.id, d.platform, d.token, d.environment, d.locale
      FROM claimed c
      JOIN pushrelay.devices d ON d.id = ANY(c.device_ids) AND d.app = c.app
     WHERE c.known AND c.expires_at > now() AND c.device_ids IS NOT NULL
       AND d.invalidated_at IS NULL AND d.app || '/' || d.platform = ANY($3)
), inserted AS (
    INSERT INTO pushrelay.deliveries
        (notification_id, device_id, app, platform, priority, expires_at,
         state, attempts, tries, lease_owner)
    SELECT t.notification_id, t.device_id, c.app, t.platform, c.priority, c.expires_at,
           'sending', 1, 1, $4
      FROM targets t JOIN claimed c ON c.id = t.notification_id
    ON CONFLICT (notification_id, device_id) DO NOTHING
    RETURNING id, notification_id, device_id
), sent AS (
    SELECT i.notification_id,
           array_agg(i.id ORDER BY i.id) AS delivery_ids,
           array_agg(i.device_id ORDER BY i.id) AS device_ids,
           array_agg(t.platform ORDER BY i.id) AS platforms,
           array_agg(t.token ORDER BY i.id) AS tokens,
           array_agg(t.environment ORDER BY i.id) AS environments,
           array_agg(t.locale ORDER BY i.id) AS locales
      FROM inserted i
      JOIN targets t ON t.notification_id = i.notification_id AND t.device_id = i.device_id
     GROUP BY i.notification_id
), settled AS (
    -- `IN (SELECT … FROM inserted)` is one hashed subplan; a join against
    -- `sent` was re-scanned once per notification (quadratic in the batch).
    UPDATE pushrelay.notifications n
       SET fanned_out_at = now(),
           state = CASE
               WHEN NOT c.known THEN 'failed'
               WHEN c.expires_at <= now() THEN 'expired'
               WHEN c.id IN (SELECT notification_id FROM inserted) THEN 'dispatched'
               ELSE 'no_devices' END,
           state_reason = CASE
               WHEN NOT c.known THEN format('unknown app %L: it is not configured in this pushrelay; add [apps.%s] to config.toml', c.app, c.app)
               WHEN c.expires_at <= now() THEN format('expired at %s before it could be sent', c.expires_at)
               WHEN c.id IN (SELECT notification_id FROM inserted) THEN NULL
               ELSE 'the recipient has no active device on a platform this app sends to'
               END
      FROM claimed c
     WHERE n.id = c.id
)
SELECT c.id, c.app, c.priority, c.template, c.title, c.body, c.data, c.collapse_key, c.expires_at,
       COALESCE(s.delivery_ids, '{}') AS delivery_ids,
       COALESCE(s.device_ids, '{}') AS device_ids,
       COALESCE(s.platforms, '{}') AS platforms,
       COALESCE(s.tokens, '{}') AS tokens,
       COALESCE(s.environments, '{}') AS environments,
       COALESCE(s.locales, '{}') AS locales
  FROM claimed c LEFT JOIN sent s ON s.notification_id = c.id

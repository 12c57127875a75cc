-- Fan-out of one priority's due notifications, in one statement: claim up
-- to $1 of them (the row locks are the lease until commit), insert one
-- delivery per active device on a platform its app sends to, already
-- leased to this process ($4) as its first try, settle every claimed
-- notification, and return per notification what its deliveries need to
-- be sent. Data-modifying CTEs share one snapshot, so the deliveries per
-- notification come from `inserted`, not from re-reading the table.
--
-- No CTE is ever joined to another: delivery ids are drawn in `targets`,
-- which carries everything a delivery needs, and the others are looked up
-- with uncorrelated `IN`s (hashed). With a stale estimate of the batch
-- (a campaign inserted faster than statistics follow) a join between CTEs
-- became a nested loop, quadratic in the batch: a second per batch.
--   $1 batch size  $2 configured apps  $3 'app/platform' routes
--   $4 worker id   $5 priority
-- A campaign's notification names its user and the devices targeted:
-- the devices named are sent to, not all of the user's.
-- `created_at` is returned for the enqueue→accepted latency histogram.
--
-- ttl_seconds = 0 is "now or never": never expired before fan-out; its
-- deliveries get one minute for their single try (the provider is told
-- apns-expiration 0 / ttl "0s", and the executor never retries them).
WITH claimed AS (
    SELECT id, app, user_id, device_ids, priority, template, title, body, data, collapse_key,
           options, created_at, campaign_id, ttl_seconds = 0 AS now_or_never,
           CASE WHEN ttl_seconds = 0 THEN now() + interval '1 minute'
                ELSE send_at + make_interval(secs => ttl_seconds) END AS expires_at,
           app = ANY($2) AS known
      FROM pushrelay.notifications
     WHERE state = 'pending' AND priority = $5 AND send_at <= now()
     ORDER BY send_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), targets AS (
    SELECT nextval('pushrelay.deliveries_id_seq') AS delivery_id, c.id AS notification_id,
           d.id AS device_id, d.platform, d.token, d.environment, d.locale,
           d.sns_endpoint_arn, d.sns_endpoint_stale, c.app, c.priority, c.template, c.title, c.body, c.data, c.collapse_key, c.options, c.now_or_never,
           c.expires_at, c.created_at, c.campaign_id
      FROM claimed c
      JOIN pushrelay.devices d ON d.app = c.app AND d.user_id = c.user_id
     WHERE c.known AND c.expires_at > now() AND c.user_id IS NOT NULL AND c.device_ids IS NULL
       AND d.invalidated_at IS NULL AND d.app || '/' || d.platform = ANY($3)
    UNION ALL
    SELECT nextval('pushrelay.deliveries_id_seq'), c.id, d.id, d.platform, d.token, d.environment,
           d.locale, d.sns_endpoint_arn, d.sns_endpoint_stale, c.app, c.priority, c.template, c.title, c.body, c.data, c.collapse_key,
           c.options, c.now_or_never, c.expires_at, c.created_at, c.campaign_id
      FROM claimed c
      JOIN pushrelay.devices d ON d.id = ANY(c.device_ids) AND d.app = c.app
     WHERE c.known AND c.expires_at > now() AND c.device_ids IS NOT NULL
       AND d.invalidated_at IS NULL AND d.app || '/' || d.platform = ANY($3)
), inserted AS (
    INSERT INTO pushrelay.deliveries
        (id, notification_id, device_id, app, platform, priority, expires_at,
         state, attempts, tries, lease_owner, campaign_id)
    OVERRIDING SYSTEM VALUE
    SELECT delivery_id, notification_id, device_id, app, platform, priority, expires_at,
           'sending', 1, 1, $4, campaign_id
      FROM targets
    ON CONFLICT (notification_id, device_id) DO NOTHING
    RETURNING id, notification_id
), settled AS (
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
SELECT notification_id AS id, app, priority, template, title, body, data, collapse_key, options,
       now_or_never, expires_at, created_at,
       array_agg(delivery_id ORDER BY delivery_id) AS delivery_ids,
       array_agg(device_id ORDER BY delivery_id) AS device_ids,
       array_agg(platform ORDER BY delivery_id) AS platforms,
       array_agg(token ORDER BY delivery_id) AS tokens,
       array_agg(environment ORDER BY delivery_id) AS environments,
       array_agg(locale ORDER BY delivery_id) AS locales,
       array_agg(sns_endpoint_arn ORDER BY delivery_id) AS endpoint_arns,
       array_agg(sns_endpoint_stale ORDER BY delivery_id) AS endpoints_stale
  FROM targets
 WHERE delivery_id IN (SELECT id FROM inserted)
 GROUP BY notification_id, app, priority, template, title, body, data, collapse_key, options,
          now_or_never, expires_at, created_at
UNION ALL
SELECT id, app, priority, template, title, body, data, collapse_key, options, now_or_never, expires_at,
       created_at,
       '{}'::bigint[], '{}'::bigint[], '{}'::text[], '{}'::text[], '{}'::text[], '{}'::text[],
       '{}'::text[], '{}'::boolean[]
  FROM claimed
 WHERE id NOT IN (SELECT notification_id FROM inserted)

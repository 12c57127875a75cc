-- A lane's claim of due retries: up to $3 pending deliveries of platform
-- $1 and priority $2 whose time has come, of no app on hold ($5), leased
-- to this process ($4), with what sending them needs. The device and the
-- notification are outer-joined so a row whose device was deleted is
-- still claimed (and then failed) instead of blocking the queue.
--
-- A due delivery whose notification was cancelled (`cancelled_at`: it
-- was handed back unsent while cancelled, e.g. at shutdown) is settled as
-- `cancelled` here instead of being sent, and not returned.
WITH due AS (
    SELECT d.id, d.cancelled_at IS NOT NULL AS cancelled,
           n.template, n.title, n.body, n.data, n.collapse_key, n.options, n.created_at,
           COALESCE(n.ttl_seconds = 0, false) AS now_or_never,
           v.token, v.environment, v.locale, v.invalidated_at, v.invalidated_reason,
           v.sns_endpoint_arn, v.sns_endpoint_stale
      FROM pushrelay.deliveries d
      LEFT JOIN pushrelay.notifications n ON n.id = d.notification_id
      LEFT JOIN pushrelay.devices v ON v.id = d.device_id
     WHERE d.state = 'pending' AND d.platform = $1 AND d.priority = $2
       AND d.next_attempt_at <= now() AND d.app <> ALL($5)
     ORDER BY d.next_attempt_at
     LIMIT $3
       FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    UPDATE pushrelay.deliveries d
       SET state = CASE WHEN due.cancelled THEN 'cancelled' ELSE 'sending' END,
           attempts = d.attempts + CASE WHEN due.cancelled THEN 0 ELSE 1 END,
           tries = d.tries + CASE WHEN due.cancelled THEN 0 ELSE 1 END,
           lease_owner = CASE WHEN due.cancelled THEN NULL ELSE $4 END,
           last_error = CASE WHEN due.cancelled THEN 'cancelled' ELSE d.last_error END,
           updated_at = now()
      FROM due
     WHERE d.id = due.id
    RETURNING d.id, d.notification_id, d.device_id, d.app, d.priority, d.expires_at, d.attempts,
              d.tries, due.cancelled, due.template, due.title, due.body, due.data,
              due.collapse_key, due.options, due.now_or_never, due.token,
              due.environment, due.locale, due.invalidated_at, due.invalidated_reason,
              due.created_at, due.sns_endpoint_arn, due.sns_endpoint_stale
)
SELECT id, notification_id, device_id, app, priority, expires_at, attempts, tries, template,
       title, body, data, collapse_key, options, now_or_never, token, environment, locale,
       invalidated_at, invalidated_reason, created_at, sns_endpoint_arn, sns_endpoint_stale
  FROM claimed
 WHERE NOT cancelled

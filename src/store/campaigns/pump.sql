-- One step of a running campaign: up to $3 of its due targets become
-- notifications (one per user, naming the user's targeted devices) that
-- the bulk fan-out sends; a target due inside its quiet hours is moved to
-- their end instead, and one past its expiry (or whose quiet hours
-- outlast it) is expired. A notification's TTL is what is left of its
-- targets' (their earliest expiry), so nothing is sent late.
-- Notification ids derive from a nonce drawn per step and the user id,
-- so targets and notifications agree without joining one CTE to another.
-- The campaign's content was checked when it was saved: the digest ($6)
-- tells the content trigger so (migration 0007).
--   $1 campaign  $2 now  $3 limit  $4 quiet hours start  $5 end (NULL: none)
--   $6 content digest  $7 nonce
WITH c AS (
    SELECT id, app, template, title, body, data, options, collapse_key, priority
      FROM pushrelay.campaigns WHERE id = $1
), picked AS (
    SELECT t.device_id, t.user_id, t.expires_at,
           CASE WHEN t.expires_at <= $2 THEN NULL
                ELSE pushrelay.after_quiet_hours($2, t.timezone, $4::time, $5::time) END AS allowed_at
      FROM pushrelay.campaign_targets t
     WHERE t.campaign_id = $1 AND t.state = 'pending' AND t.due_at <= $2
     ORDER BY t.due_at
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), sendable AS (
    SELECT device_id, user_id, expires_at, md5($7 || user_id)::uuid AS notification_id
      FROM picked
     WHERE allowed_at = $2
), notified AS (
    INSERT INTO pushrelay.notifications
        (id, app, user_id, device_ids, template, title, body, data, options, collapse_key,
         priority, ttl_seconds, send_at, campaign_id, request_sha256)
    SELECT s.notification_id, c.app, s.user_id, s.device_ids, c.template, c.title, c.body, c.data,
           c.options, c.collapse_key, c.priority,
           GREATEST(1, ceil(extract(epoch FROM s.expires_at - $2)))::int, now(), c.id, $6
      FROM (SELECT notification_id, min(user_id) AS user_id,
                   array_agg(device_id ORDER BY device_id) AS device_ids,
                   min(expires_at) AS expires_at
              FROM sendable GROUP BY notification_id) s
     CROSS JOIN c
    RETURNING id
), queued AS (
    UPDATE pushrelay.campaign_targets t
       SET state = 'queued', notification_id = md5($7 || t.user_id)::uuid, queued_at = $2
     WHERE t.campaign_id = $1 AND t.device_id IN (SELECT device_id FROM sendable)
    RETURNING 1
), deferred AS (
    UPDATE pushrelay.campaign_targets t
       SET due_at = pushrelay.after_quiet_hours($2, t.timezone, $4::time, $5::time)
     WHERE t.campaign_id = $1 AND t.device_id IN (
           SELECT device_id FROM picked WHERE allowed_at > $2 AND allowed_at < expires_at)
    RETURNING 1
), expired AS (
    UPDATE pushrelay.campaign_targets t
       SET state = 'expired'
     WHERE t.campaign_id = $1 AND t.device_id IN (
           SELECT device_id FROM picked WHERE allowed_at IS NULL OR allowed_at >= expires_at)
    RETURNING 1
)
SELECT (SELECT count(*) FROM queued) AS queued,
       (SELECT count(*) FROM notified) AS notifications,
       (SELECT count(*) FROM deferred) AS deferred,
       (SELECT count(*) FROM expired) AS expired

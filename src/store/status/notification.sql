-- The notifications support asks about (their device receipts are
-- counted from the deliveries' own, read after), with the campaign that
-- sent them, if any.
SELECT n.id, n.app, n.user_id, n.device_ids, n.template, n.title, n.priority, n.state,
       n.state_reason, n.idempotency_key, n.created_at, n.send_at,
       n.send_at + make_interval(secs => n.ttl_seconds) AS expires_at, n.ttl_seconds,
       n.fanned_out_at, n.cancelled_at, n.campaign_id, c.name AS campaign_name
  FROM pushrelay.notifications n LEFT JOIN pushrelay.campaigns c ON c.id = n.campaign_id
 WHERE n.id = ANY($1)

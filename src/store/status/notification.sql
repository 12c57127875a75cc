-- The notifications support asks about, with the device receipts counted:
-- how many of their deliveries the app on the device reported received,
-- displayed and opened.
SELECT n.id, n.app, n.user_id, n.device_ids, n.template, n.title, n.priority, n.state,
       n.state_reason, n.idempotency_key, n.created_at, n.send_at,
       n.send_at + make_interval(secs => n.ttl_seconds) AS expires_at, n.ttl_seconds,
       n.fanned_out_at, n.cancelled_at,
       (SELECT count(*) FROM pushrelay.device_receipts r
         WHERE r.notification_id = n.id AND r.event = 'received') AS received,
       (SELECT count(*) FROM pushrelay.device_receipts r
         WHERE r.notification_id = n.id AND r.event = 'displayed') AS displayed,
       (SELECT count(*) FROM pushrelay.device_receipts r
         WHERE r.notification_id = n.id AND r.event = 'opened') AS opened
  FROM pushrelay.notifications n WHERE n.id = ANY($1)

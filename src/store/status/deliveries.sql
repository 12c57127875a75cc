SELECT d.id, d.notification_id, d.device_id, d.platform, v.token, d.state, d.attempts,
       CASE WHEN d.state = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
       d.provider_message_id, d.last_error, d.cancelled_at
  FROM pushrelay.deliveries d LEFT JOIN pushrelay.devices v ON v.id = d.device_id
 WHERE d.notification_id = ANY($1) ORDER BY d.id

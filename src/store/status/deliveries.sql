SELECT d.id, d.device_id, d.platform, v.token, d.state, d.attempts,
       CASE WHEN d.state = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
       d.provider_message_id, d.last_error
  FROM pushrelay.deliveries d LEFT JOIN pushrelay.devices v ON v.id = d.device_id
 WHERE d.notification_id = $1 ORDER BY d.id

SELECT id, app, user_id, template, priority, state, state_reason, created_at, send_at,
       send_at + make_interval(secs => ttl_seconds) AS expires_at, ttl_seconds, fanned_out_at
  FROM pushrelay.notifications WHERE id = $1

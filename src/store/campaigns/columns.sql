SELECT id, app, name, template, title, body, data, options, collapse_key, priority, ttl_seconds,
       category, segment, user_list_id, send_at, local_date, local_time, starts_at,
       throttle_per_minute, state, paced_until, audience_max_device_id, evaluated_through,
       created_by, created_at, updated_at, started_at, paused_at, cancelled_at, completed_at
  FROM pushrelay.campaigns

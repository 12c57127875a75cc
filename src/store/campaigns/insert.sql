-- A new campaign, scheduled.
INSERT INTO pushrelay.campaigns
    (app, name, template, title, body, data, options, collapse_key, priority, ttl_seconds,
     category, segment, user_list_id, send_at, local_date, local_time, starts_at,
     throttle_per_minute, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
RETURNING id

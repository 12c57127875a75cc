-- Notifications number $2…$3-1 of app $1, spread over $4 users, priority
-- $5, time to live $6 seconds.
INSERT INTO pushrelay.notifications (app, user_id, template, data, priority, ttl_seconds)
SELECT $1, 'u' || (1 + (i * 7919) % $4), 'transfer_received',
       jsonb_build_object('amount', (i % 1000) || '.00', 'currency', 'EUR', 'sender', 'Bench ' || i),
       $5, $6
  FROM generate_series($2, $3 - 1) i

SELECT id FROM pushrelay.notifications WHERE app = $1 AND idempotency_key = $2

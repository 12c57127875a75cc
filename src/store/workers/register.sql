-- A process announces itself. A row left by an earlier life of the same
-- id is taken over (its deliveries were handed back just before).
INSERT INTO pushrelay.workers (id, host, pid) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE
   SET host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = now(), heartbeat_at = now()

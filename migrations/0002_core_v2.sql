-- Core v2: leases held by live processes, priority at fan-out, and less
-- database work per delivery. Stop every `pushrelay run` before applying
-- it: an older daemon does not know the new lease rules.

-- Every running daemon registers here and heartbeats from a connection of
-- its own. A delivery leased by a process stays leased while that process
-- heartbeats, however slow the database is; only a process that stopped
-- heartbeating (crashed, hung, cut off) loses its deliveries to the
-- rescuer of another one.
CREATE TABLE pushrelay.workers (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Leases no longer expire by the clock: the per-row expiry goes, and the
-- rescuer finds a dead process's deliveries by owner among the (few) rows
-- being sent.
DROP INDEX pushrelay.deliveries_leased;
ALTER TABLE pushrelay.deliveries DROP COLUMN lease_expires_at;
CREATE INDEX deliveries_leased ON pushrelay.deliveries (lease_owner)
    WHERE state = 'sending';

-- `attempts` counts the tries that use up the retry budget; `tries` counts
-- every send, including those a credential error handed back, and numbers
-- the receipts.
ALTER TABLE pushrelay.deliveries ADD COLUMN tries integer NOT NULL DEFAULT 0;

-- Receipts are identified by (delivery, try): one index instead of a
-- surrogate key plus a lookup index. Earlier receipts are renumbered first,
-- since a credential error used to reuse its attempt's number.
UPDATE pushrelay.attempts a
   SET attempt = r.n
  FROM (SELECT id, row_number() OVER (PARTITION BY delivery_id ORDER BY id)::int AS n
          FROM pushrelay.attempts) r
 WHERE a.id = r.id AND a.attempt <> r.n;
UPDATE pushrelay.deliveries d
   SET tries = c.n
  FROM (SELECT delivery_id, count(*)::int AS n FROM pushrelay.attempts GROUP BY delivery_id) c
 WHERE d.id = c.delivery_id;
ALTER TABLE pushrelay.attempts DROP COLUMN id;
DROP INDEX pushrelay.attempts_by_delivery;
ALTER TABLE pushrelay.attempts ADD PRIMARY KEY (delivery_id, attempt);

-- Foreign keys cost a lookup and a row lock on the parent for every
-- delivery and every receipt written (the three checks were a large share
-- of the database's work per delivery). pushrelay writes these rows
-- itself and deletes them together (retention cleaner), so the checks
-- protect nothing a producer does; they go.
ALTER TABLE pushrelay.deliveries DROP CONSTRAINT deliveries_notification_id_fkey;
ALTER TABLE pushrelay.deliveries DROP CONSTRAINT deliveries_device_id_fkey;
ALTER TABLE pushrelay.attempts DROP CONSTRAINT attempts_delivery_id_fkey;

-- Deliveries are inserted by fan-out already leased to the process that
-- sends them; nobody needs waking for them any more.
DROP TRIGGER deliveries_wake_dispatch ON pushrelay.deliveries;
DROP FUNCTION pushrelay.notify_deliveries();

-- Fan-out takes urgent notifications before bulk ones, whatever was queued
-- first: one index serves both priorities' claims.
DROP INDEX pushrelay.notifications_pending_due;
CREATE INDEX notifications_pending_due ON pushrelay.notifications (priority, send_at)
    WHERE state = 'pending';

-- The queue tables churn: every delivery is inserted and updated, and the
-- backlog indexes are partial over short-lived states. Vacuum and analyze
-- them far more often than PostgreSQL's defaults (20 % / 10 % of the table
-- changed) would, so dead rows and stale statistics never pile up under a
-- sustained load. These only take effect while autovacuum is on; pushrelay
-- warns at start-up when it is off.
ALTER TABLE pushrelay.notifications SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 1);
ALTER TABLE pushrelay.deliveries SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 1);
ALTER TABLE pushrelay.attempts SET (
    autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 1);
ALTER TABLE pushrelay.workers SET (
    autovacuum_vacuum_threshold = 100, autovacuum_vacuum_scale_factor = 0);

-- A delivery being sent when this migration runs has made a try that has
-- no receipt yet; count it, so the rescuer's `lost` receipt gets its own
-- number.
UPDATE pushrelay.deliveries SET tries = tries + 1 WHERE state = 'sending';

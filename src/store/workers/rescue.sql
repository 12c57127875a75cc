-- Hands back, with a `lost` receipt each, up to $2 deliveries held by
-- processes that are gone: those whose heartbeat is older than $1 seconds
-- (their registration is removed here), those named in $3 (an earlier
-- life of a restarting process), and owners with no registration at all.
-- A live process's deliveries are never touched, however long they take.
-- A delivery whose notification was cancelled (`cancelled_at`) is not
-- re-queued: it becomes `cancelled`.
-- Each `lost` receipt written is added to the per-minute outcome counts
-- (outcome and reason `lost`), in key order like the completer's.
-- Returns how many deliveries were handed back and which processes were
-- declared gone.
WITH dead AS (
    DELETE FROM pushrelay.workers
     WHERE heartbeat_at < now() - make_interval(secs => $1) OR id = ANY($3)
    RETURNING id
), lost AS (
    SELECT d.id, d.lease_owner, d.tries, d.updated_at
      FROM pushrelay.deliveries d
     WHERE d.state = 'sending'
       AND (d.lease_owner IN (SELECT id FROM dead) OR d.lease_owner = ANY($3)
            OR NOT EXISTS (SELECT 1 FROM pushrelay.workers w WHERE w.id = d.lease_owner))
     LIMIT $2
       FOR UPDATE OF d SKIP LOCKED
), requeued AS (
    UPDATE pushrelay.deliveries d
       SET state = CASE WHEN d.cancelled_at IS NULL THEN 'pending' ELSE 'cancelled' END,
           next_attempt_at = now(), lease_owner = NULL, updated_at = now(),
           last_error = CASE WHEN d.cancelled_at IS NULL
               THEN format('process %s stopped reporting while it held this delivery; re-queued',
                           lost.lease_owner)
               ELSE format('process %s stopped reporting while it held this delivery; cancelled, not re-queued',
                           lost.lease_owner) END
      FROM lost
     WHERE d.id = lost.id
    RETURNING d.id, d.app, d.platform, lost.tries, lost.lease_owner, lost.updated_at, d.state
), receipts AS (
    INSERT INTO pushrelay.attempts
        (delivery_id, attempt, worker, provider, started_at, finished_at, latency_ms, outcome,
         reason, retry_at)
    SELECT id, greatest(tries, 1), lease_owner, '(unknown)', updated_at, now(), 0, 'lost',
           'the process that held this delivery stopped reporting (crashed, hung or cut off); it may or may not have been sent',
           CASE WHEN state = 'pending' THEN now() END
      FROM requeued
    ON CONFLICT (delivery_id, attempt) DO NOTHING
    RETURNING delivery_id, finished_at
), counted AS (
    INSERT INTO pushrelay.attempt_counts AS c (minute, app, platform, outcome, reason, count)
    SELECT date_trunc('minute', r.finished_at, 'UTC'), q.app, q.platform, 'lost', 'lost', count(*)
      FROM receipts r JOIN requeued q ON q.id = r.delivery_id
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (minute, app, platform, outcome, reason)
    DO UPDATE SET count = c.count + excluded.count
)
SELECT (SELECT count(*) FROM requeued) AS rescued,
       COALESCE((SELECT array_agg(id) FROM dead), '{}') AS dead

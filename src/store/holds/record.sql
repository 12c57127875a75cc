-- A hold this process ($4) opened; replaces its previous one for the same
-- app/platform/environment. Holds over for a day are dropped on the way.
WITH gone AS (
    DELETE FROM pushrelay.provider_holds WHERE paused_until < now() - interval '1 day'
)
INSERT INTO pushrelay.provider_holds
    (app, platform, environment, worker, kind, reason, hint, paused_until)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (app, platform, environment, worker) DO UPDATE
   SET kind = EXCLUDED.kind, reason = EXCLUDED.reason, hint = EXCLUDED.hint,
       paused_at = now(), paused_until = EXCLUDED.paused_until

-- Holds still running, of one platform ($1, or all when NULL), the latest
-- per app/platform/environment.
SELECT DISTINCT ON (app, platform, environment)
       app, platform, environment, worker, kind, reason, hint, paused_at, paused_until
  FROM pushrelay.provider_holds
 WHERE paused_until > now() AND ($1::text IS NULL OR platform = $1)
 ORDER BY app, platform, environment, paused_until DESC

-- Deletes up to $2 per-minute outcome counts older than $1 days (the
-- overview reads the last hour; a week is kept to look back on an
-- incident).
DELETE FROM pushrelay.attempt_counts
 WHERE (minute, app, platform, outcome, reason) IN (
       SELECT minute, app, platform, outcome, reason
         FROM pushrelay.attempt_counts
        WHERE minute < now() - make_interval(days => $1)
        LIMIT $2)

-- One round of FCM quota sharing for a process: writes the slowdowns it
-- has seen ($2 projects, $3 seconds still slowed, 0 for none), and reads
-- how many processes are live (heard within $1 seconds) and each project's
-- slowdown, in seconds from now (the database's clock, so hosts' clocks
-- need not agree). The table is named for holds (migration 0005, applied
-- as written); it stores slowdowns. The read does not see this statement's
-- own write (one snapshot): a process learns its own slowdown from itself,
-- and the others' from the next round.
WITH put AS (
    INSERT INTO pushrelay.fcm_quota_holds AS q (project, held_until)
    SELECT x.p, now() + make_interval(secs => x.s)
      FROM unnest($2::text[], $3::float8[]) AS x(p, s)
     WHERE x.s > 0
    ON CONFLICT (project) DO UPDATE
       SET held_until = GREATEST(q.held_until, EXCLUDED.held_until)
)
SELECT (SELECT count(*) FROM pushrelay.workers
         WHERE heartbeat_at > now() - make_interval(secs => $1::float8))::bigint AS live,
       p.project,
       COALESCE((SELECT extract(epoch FROM q.held_until - now())::float8
                   FROM pushrelay.fcm_quota_holds q
                  WHERE q.project = p.project), 0)::float8 AS slowed_secs
  FROM unnest($2::text[]) AS p(project)

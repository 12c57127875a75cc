-- Pause and resume: the new state, with the moment of a pause. The throttle
-- restarts from now on resume (no burst for the time paused).
UPDATE pushrelay.campaigns
   SET state = $2, updated_at = now(),
       paused_at = CASE WHEN $2 = 'paused' THEN now() ELSE paused_at END,
       paced_until = CASE WHEN $2 = 'paused' THEN paced_until ELSE NULL END
 WHERE id = $1

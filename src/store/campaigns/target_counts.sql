-- Progress from the targets, per platform: $2 is now (what is due), $3
-- the start of the last minute (the send rate).
SELECT platform,
       count(*) FILTER (WHERE state <> 'no_consent') AS targeted,
       count(*) FILTER (WHERE state = 'no_consent') AS no_consent,
       count(*) FILTER (WHERE state = 'pending' AND due_at > $2) AS scheduled,
       count(*) FILTER (WHERE state = 'pending' AND due_at <= $2) AS waiting,
       count(*) FILTER (WHERE state = 'queued') AS queued,
       count(*) FILTER (WHERE state = 'expired') AS expired,
       count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE state = 'queued' AND queued_at > $3) AS queued_last_minute,
       max(due_at) FILTER (WHERE state = 'pending') AS last_due_at
  FROM pushrelay.campaign_targets
 WHERE campaign_id = $1
 GROUP BY platform

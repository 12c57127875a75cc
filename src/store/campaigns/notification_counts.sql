-- Progress from the campaign's notifications that made no delivery (yet),
-- per platform of their still-queued targets and state: `pending` (still
-- in the outbox), or ended before fan-out (`expired`, ...; a cancelled
-- one's targets are cancelled with it). The pump keeps the outbox short
-- and cancel only ends what was waiting, so these are few.
SELECT t.platform, n.state, count(*) AS n
  FROM pushrelay.notifications n
 CROSS JOIN LATERAL unnest(n.device_ids) AS d(id)
  JOIN pushrelay.campaign_targets t
    ON t.campaign_id = n.campaign_id AND t.device_id = d.id AND t.state = 'queued'
 WHERE n.campaign_id = $1
   AND (n.state = 'pending' OR n.state IN ('expired', 'cancelled', 'no_devices', 'failed'))
 GROUP BY t.platform, n.state

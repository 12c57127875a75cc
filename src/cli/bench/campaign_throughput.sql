-- Campaign $1's deliveries the provider accepted, when the campaign
-- started (its audience evaluation began) and the last acceptance.
SELECT count(*),
       (SELECT started_at FROM pushrelay.campaigns WHERE id = $1),
       max(a.finished_at)
  FROM pushrelay.deliveries d
  JOIN pushrelay.attempts a ON a.delivery_id = d.id AND a.outcome = 'delivered'
 WHERE d.campaign_id = $1

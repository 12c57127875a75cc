-- Progress from the deliveries, per platform and state; `sent`: those
-- that have been handed to the provider at least once.
SELECT platform, state, count(*) AS n, count(*) FILTER (WHERE tries > 0) AS sent
  FROM pushrelay.deliveries
 WHERE campaign_id = $1
 GROUP BY platform, state

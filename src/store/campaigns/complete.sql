-- A running campaign whose audience is evaluated and has no target left
-- waiting is complete (its deliveries may still be retried).
UPDATE pushrelay.campaigns
   SET state = 'completed', completed_at = now(), updated_at = now()
 WHERE id = $1 AND state = 'running' AND evaluated_through >= audience_max_device_id
   AND NOT EXISTS (SELECT 1 FROM pushrelay.campaign_targets
                    WHERE campaign_id = $1 AND state = 'pending')
RETURNING id

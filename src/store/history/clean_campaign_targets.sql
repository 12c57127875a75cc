-- Deletes up to $2 targets of campaigns that ended (completed or
-- cancelled) more than $1 days ago. The campaign rows stay: marketing's
-- record of what was sent when, a few hundred bytes each.
DELETE FROM pushrelay.campaign_targets
 WHERE (campaign_id, device_id) IN (
       SELECT t.campaign_id, t.device_id
         FROM pushrelay.campaigns c
         JOIN pushrelay.campaign_targets t ON t.campaign_id = c.id
        WHERE c.state IN ('completed', 'cancelled')
          AND COALESCE(c.cancelled_at, c.completed_at) < now() - make_interval(days => $1)
        LIMIT $2)

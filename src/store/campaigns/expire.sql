-- Targets whose moment plus TTL passed while they waited (for the
-- throttle, or paused) expire without waiting for the throttle's
-- allowance, up to $3 a step: a campaign resumed a day late ends at once
-- instead of expiring one throttle slot at a time. (A pending target
-- past its expiry is past its due time too: evaluation expires one whose
-- quiet hours outlast its TTL.) In expiry order, so the scan is a range
-- of campaign_targets_expiring.
--   $1 campaign  $2 now  $3 at most
UPDATE pushrelay.campaign_targets
   SET state = 'expired'
 WHERE campaign_id = $1 AND device_id IN (
       SELECT device_id FROM pushrelay.campaign_targets
        WHERE campaign_id = $1 AND state = 'pending' AND expires_at <= $2
        ORDER BY expires_at
        LIMIT $3
          FOR UPDATE SKIP LOCKED)

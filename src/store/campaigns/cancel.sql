-- Cancelling, first step: the campaign and every target still waiting.
WITH campaign AS (
    UPDATE pushrelay.campaigns
       SET state = 'cancelled', cancelled_at = now(), updated_at = now()
     WHERE id = $1
)
UPDATE pushrelay.campaign_targets SET state = 'cancelled'
 WHERE campaign_id = $1 AND state = 'pending'

-- A campaign's notifications not yet fanned out.
SELECT count(*) FROM pushrelay.notifications WHERE campaign_id = $1 AND state = 'pending'

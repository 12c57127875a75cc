-- A scheduled campaign starts: its audience is fixed as the app's devices
-- registered so far (devices registered later are not added), to be
-- evaluated in id order from the first.
UPDATE pushrelay.campaigns
   SET state = 'running', started_at = now(), updated_at = now(), evaluated_through = 0,
       audience_max_device_id = (SELECT COALESCE(max(id), 0) FROM pushrelay.devices WHERE app = $2)
 WHERE id = $1 AND state = 'scheduled'
RETURNING audience_max_device_id

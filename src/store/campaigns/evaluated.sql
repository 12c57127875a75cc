-- How far the audience's evaluation has come ($2: device id).
UPDATE pushrelay.campaigns SET evaluated_through = $2, updated_at = now() WHERE id = $1

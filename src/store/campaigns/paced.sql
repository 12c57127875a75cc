-- The throttle's pace after a step ($2).
UPDATE pushrelay.campaigns SET paced_until = $2 WHERE id = $1

DELETE FROM pushrelay.workers WHERE id = $1

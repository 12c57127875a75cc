DELETE FROM pushrelay.console_sessions WHERE secret_sha256 = $1

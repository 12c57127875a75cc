SELECT current_setting('autovacuum')

-- The campaigns the pump has work for at $1: scheduled ones whose start
-- has come, and running ones.
SELECT id FROM pushrelay.campaigns
 WHERE state IN ('scheduled', 'running') AND starts_at <= $1
 ORDER BY starts_at

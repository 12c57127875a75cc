-- Deliveries accepted, first fan-out, last acceptance.
SELECT (SELECT count(*) FROM pushrelay.attempts WHERE outcome = 'delivered'),
(SELECT min(fanned_out_at) FROM pushrelay.notifications),
(SELECT max(finished_at) FROM pushrelay.attempts WHERE outcome = 'delivered')

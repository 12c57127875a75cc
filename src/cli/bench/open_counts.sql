-- What is still open, for the error of a phase that did not drain.
SELECT (SELECT count(*) FROM pushrelay.notifications WHERE state = 'pending'),
(SELECT count(*) FROM pushrelay.deliveries WHERE state IN ('pending', 'sending'))

-- Notifications not yet fanned out plus deliveries not yet settled, for
-- one app: zero means everything enqueued so far has an outcome.
SELECT (SELECT count(*) FROM pushrelay.notifications WHERE app = $1 AND state = 'pending')
     + (SELECT count(*) FROM pushrelay.deliveries WHERE app = $1 AND state IN ('pending', 'sending'))

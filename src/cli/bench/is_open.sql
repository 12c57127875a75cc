-- Anything not yet settled? Each EXISTS stops at the first live entry of a
-- partial index (a count would visit every row of a large backlog, every
-- poll, on the machine being measured).
SELECT EXISTS (SELECT 1 FROM pushrelay.notifications WHERE state = 'pending')
OR EXISTS (SELECT 1 FROM pushrelay.deliveries WHERE state = 'pending')
OR EXISTS (SELECT 1 FROM pushrelay.deliveries WHERE state = 'sending')

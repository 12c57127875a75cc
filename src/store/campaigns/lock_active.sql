-- (continues columns.sql) A campaign for one pump step, unless another
-- process is pumping it (or it is being changed) at this moment.
 WHERE id = $1 AND state IN ('scheduled', 'running')
   FOR UPDATE SKIP LOCKED

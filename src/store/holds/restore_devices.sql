-- Devices invalidated during a burst the guard took for a misconfiguration
-- ($1), invalidated since $2: active again. A device invalidated before the
-- burst, or removed by an operator since, keeps its state.
UPDATE pushrelay.devices
   SET invalidated_at = NULL, invalidated_reason = NULL, sns_endpoint_stale = true
 WHERE id = ANY($1) AND invalidated_at >= $2
   AND invalidated_reason IS DISTINCT FROM 'removed by operator'

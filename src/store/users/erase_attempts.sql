-- Erasure, step 4: the send attempts of the erased deliveries.
DELETE FROM pushrelay.attempts WHERE delivery_id = ANY($1)

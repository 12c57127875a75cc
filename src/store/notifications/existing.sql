-- The notifications already holding some (app, idempotency_key) pairs,
-- with the digest of the request each came from (NULL: a producer's SQL
-- insert), to tell a repeat from a conflicting reuse of the key, and what
-- a repeat is answered with.
SELECT n.app, n.idempotency_key, n.id, n.request_sha256, n.state, n.created_at, n.send_at
  FROM pushrelay.notifications n
  JOIN UNNEST($1::text[], $2::text[]) AS k(app, idempotency_key)
    ON n.app = k.app AND n.idempotency_key = k.idempotency_key

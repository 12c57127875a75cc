-- wrk script: single enqueues, POST /v1/notifications. Every request is a
-- new notification (no idempotency key) to one of 10,000 users, with a
-- small `data` object as real notifications carry; bench/api.sh sets
-- PUSHRELAY_KEY and APP.
local key = os.getenv("PUSHRELAY_KEY")
local app = os.getenv("APP") or "demo"
-- SEND_AT: schedule them (e.g. far ahead, to measure the enqueue alone).
local send_at = os.getenv("SEND_AT")
local extra = send_at and string.format(',"send_at":"%s"', send_at) or ""
local n = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

function setup(thread)
  thread:set("id", tostring(math.random(1, 1e9)))
end

function request()
  n = n + 1
  local body = string.format(
    '{"app":"%s","user_id":"bench-user-%d","title":"Transfer received","body":"You received %d.00 EUR","data":{"amount":"%d.00","currency":"EUR","ref":"%s-%d"}%s}',
    app, n % 10000, n % 997, n % 997, id or "t", n, extra)
  return wrk.format(nil, nil, nil, body)
end


function done(summary, latency, requests)
  io.write(string.format("non_2xx=%d\n", summary.errors.status))
end

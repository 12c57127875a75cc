-- wrk script: POST /v1/notifications/batch with BATCH (default 1,000)
-- notifications per request, to users without devices or with a few on
-- the simulator (bench/api.sh decides). Each item carries a small `data`
-- object, as a real notification does (an empty one would spare the
-- database work real traffic costs). The body is built once per thread.
local key = os.getenv("PUSHRELAY_KEY")
local app = os.getenv("APP") or "demo"
-- SEND_AT: schedule them (e.g. far ahead, to measure the enqueue alone).
local send_at = os.getenv("SEND_AT")
local extra = send_at and string.format(',"send_at":"%s"', send_at) or ""
local size = tonumber(os.getenv("BATCH") or "1000")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local items = {}
for i = 1, size do
  items[i] = string.format(
    '{"app":"%s","user_id":"bench-user-%d","priority":"bulk","title":"Weekly digest","body":"Your statement %d is ready","data":{"amount":"%d.%02d","currency":"EUR","ref":"stmt-%d"}%s}',
    app, i % 10000, i, i % 1000, i % 100, i, extra)
end
wrk.body = '{"notifications":[' .. table.concat(items, ",") .. ']}'

function done(summary, latency, requests)
  io.write(string.format("non_2xx=%d\n", summary.errors.status))
end

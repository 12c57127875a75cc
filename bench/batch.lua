-- wrk script: POST /v1/notifications/batch with BATCH (default 1,000)
-- notifications per request, to users without devices or with a few on
-- the simulator (bench/api.sh decides). The body is built once per thread.
local key = os.getenv("PUSHRELAY_KEY")
local app = os.getenv("APP") or "demo"
local size = tonumber(os.getenv("BATCH") or "1000")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local items = {}
for i = 1, size do
  items[i] = string.format(
    '{"app":"%s","user_id":"bench-user-%d","priority":"bulk","title":"Weekly digest","body":"Your statement %d is ready"}',
    app, i % 10000, i)
end
wrk.body = '{"notifications":[' .. table.concat(items, ",") .. ']}'

function done(summary, latency, requests)
  io.write(string.format("non_2xx=%d\n", summary.errors.status))
end

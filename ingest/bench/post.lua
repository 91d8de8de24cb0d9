-- wrk script: POST Segment-style events to footfall-ingest (loopback only).
--
--   BENCH_MODE=batch BENCH_BATCH=100 wrk -t1 -c32 -d10s -s ingest/bench/post.lua http://127.0.0.1:PORT
--   BENCH_MODE=track                 wrk -t1 -c32 -d10s -s ingest/bench/post.lua http://127.0.0.1:PORT
--
-- batch: POST /v1/batch, text/plain (as the SDK and sendBeacon send it), BENCH_BATCH messages with a
--        batch-level context, writeKey in the body.
-- track: POST /v1/track, application/json, one message with its full context.
-- Every request gets fresh messageIds (a per-thread counter spliced into a prebuilt body): the
-- ingest deduplicates on messageId, so resending one body would measure the duplicate path.
-- done() prints requests/s, events/s and latency percentiles, plus any non-2xx count.

local mode = os.getenv("BENCH_MODE") or "batch"
local per_request = mode == "track" and 1 or tonumber(os.getenv("BENCH_BATCH") or "100")

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

local stamp = os.date("!%Y-%m-%dT%H:%M:%S.000Z")
local shared_ctx = '"library":{"name":"footfall","version":"0.1.0"},'
  .. '"userAgent":"Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36",'
  .. '"locale":"en-GB","timezone":"Europe/London","screen":{"width":1920,"height":1080}'
local page_ctx = '"page":{"path":"/pricing","referrer":"","title":"Pricing",'
  .. '"url":"http://127.0.0.1/pricing"},"sessionId":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"'

local function event(j, ctx)
  return string.format('{"type":"track","event":"Viewed Pricing","properties":{"plan":"pro","i":%d},'
    .. '"anonymousId":"6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e","messageId":"%%ID%%-%06d",'
    .. '"timestamp":"%s","context":{%s}}', j, j, stamp, ctx)
end

local body_template, path, content_type
local seq = 0

function init(args)
  if mode == "track" then
    path, content_type = "/v1/track", "application/json"
    body_template = event(0, shared_ctx .. "," .. page_ctx):gsub("^{", '{"writeKey":"dev",')
  else
    path, content_type = "/v1/batch", "text/plain;charset=UTF-8"
    local events = {}
    for j = 1, per_request do events[j] = event(j, page_ctx) end
    body_template = '{"writeKey":"dev","sentAt":"' .. stamp .. '","context":{' .. shared_ctx
      .. '},"batch":[' .. table.concat(events, ",") .. ']}'
  end
end

function request()
  seq = seq + 1
  local id = string.format("t%d-%d", thread_id or 0, seq)
  local body = body_template:gsub("%%ID%%", id)
  return wrk.format("POST", path, { ["Content-Type"] = content_type }, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local rps = summary.requests / secs
  io.write(string.format(
    "mode=%s events/request=%d requests=%d non2xx=%d errors(connect/read/write/timeout)=%d/%d/%d/%d\n"
      .. "requests/s=%.0f events/s=%.0f latency p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n",
    mode, per_request, summary.requests, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout, rps, rps * per_request,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end

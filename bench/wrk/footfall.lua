-- wrk script for the ingest benchmark (issue 5): POSTs Segment-style messages shaped like the ones
-- the Footfall SDK sends, to footfall-ingest or to the nginx baseline (same bytes to both).
--
-- Configured by environment variables so one script serves every scenario:
--   BENCH_MODE   track | batch   (POST /v1/track with one message, or /v1/batch with BENCH_BATCH)
--   BENCH_BATCH  messages per /v1/batch body (default 100)
--   BENCH_DELAY_MS  when set, each connection waits a random 0..2×this many ms after every response
--                   (mean = this): a paced, fixed-rate load for the "p99 at half the peak rate" row.
--   BENCH_MAX_REQUESTS  stop each thread after this many responses (fixed work; see below)
--   BENCH_OUT    file to append one JSON result line to (done() runs once, in wrk's main thread)
--
-- Every request carries fresh messageIds (the ingest dedupes on messageId, so resending the same
-- body would measure the duplicate-drop path, not the append path). The body is pre-built and cut
-- at its id placeholders once; a request joins the pieces with its counter (one table.concat, a
-- copy of the body) — the same work for both servers. (A gsub over the whole body per request
-- cost wrk ~400 µs of CPU per 36 KB batch body, more than half of the 2 cores at nginx's rate.)

local mode = os.getenv("BENCH_MODE") or "track"
local batch = tonumber(os.getenv("BENCH_BATCH") or "100")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
local out = os.getenv("BENCH_OUT")

local thread_counter = 0
local threads = {}

function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("tid", thread_counter)
  table.insert(threads, thread)
end

local now = os.date("!%Y-%m-%dT%H:%M:%S.000Z")
-- Batch-level context, as the SDK sends it once per batch (contracts.md: merged into each message).
-- Keys in the SDK's order (sorted, sdk/js/context.js).
local common = '"library":{"name":"footfall","version":"0.1.0"},'
  .. '"locale":"en-GB","screen":{"density":1,"height":1080,"width":1920},"timezone":"Europe/London",'
  .. '"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"'
local page = '"page":{"path":"/pricing","referrer":"","search":"","title":"Pricing","url":"http://127.0.0.1/pricing"},'
  .. '"sessionId":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"'

local function message(tid, j, with_common)
  local ctx = page
  if with_common then ctx = common .. "," .. page end
  return string.format('{"type":"track","event":"evt","properties":{"i":%d},'
    .. '"anonymousId":"6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e",'
    .. '"messageId":"@@@@@@@@-%04x-4000-8000-%012x","timestamp":"%s","context":{%s}}',
    j, tid, j, now, ctx)
end

local pieces, path, ctype
local counter = 0

-- `text` cut at every "@@@@@@@@" (plain search): joining the pieces with X puts X in their place.
local function cut(text)
  local out, at = {}, 1
  while true do
    local i, j = string.find(text, "@@@@@@@@", at, true)
    if not i then break end
    out[#out + 1] = string.sub(text, at, i - 1)
    at = j + 1
  end
  out[#out + 1] = string.sub(text, at)
  return out
end

function init(args)
  local tid = tid or 1
  if mode == "healthz" then
    -- No body and no sink: what the HTTP stack alone costs (bench/ingest.bench.mjs "ceiling").
    path = "/healthz"
    return
  end
  if mode == "track" then
    path = "/v1/track"
    ctype = "application/json"
    -- Segment's HTTP API: writeKey in the body; one message with its full context.
    pieces = cut((message(tid, 0, true):gsub('^{', '{"writeKey":"dev",')))
  else
    path = "/v1/batch"
    ctype = "text/plain;charset=UTF-8" -- what the SDK sends (no CORS preflight)
    local parts = {}
    for j = 0, batch - 1 do parts[#parts + 1] = message(tid, j, false) end
    pieces = cut('{"batch":[' .. table.concat(parts, ",") .. '],"sentAt":"' .. now
      .. '","writeKey":"dev","context":{' .. common .. '}}')
  end
end

function request()
  if mode == "healthz" then return wrk.format("GET", path) end
  counter = counter + 1
  local body = table.concat(pieces, string.format("%08x", counter))
  return wrk.format("POST", path, { ["Content-Type"] = ctype }, body)
end

if delay_ms then
  function delay()
    return math.random(0, 2 * delay_ms)
  end
end

-- No response() callback for timed runs: defining one makes wrk parse every body in Lua. Non-2xx
-- answers are still counted by wrk itself (summary.errors.status). BENCH_MAX_REQUESTS (per thread)
-- turns a run into a fixed amount of work, for instruction counts under callgrind.
local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "")
if max_requests then
  local responses = 0
  function response(status, headers, body)
    responses = responses + 1
    if responses >= max_requests then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local line = string.format('{"mode":"%s","batch":%d,"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,'
    .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}',
    mode, mode == "track" and 1 or batch, summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout)
  if out then
    local f = io.open(out, "a")
    f:write(line, "\n")
    f:close()
  else
    io.write(line, "\n")
  end
end

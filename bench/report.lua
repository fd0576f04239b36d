-- wrk script: optional request list (BENCH_REQUESTS file: method<TAB>path<TAB>cookie<TAB>body per line),
-- counts answers by status and prints one JSON line with rps and latency percentiles (microseconds).
local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  thread:set("step", 0)
  counter = counter + 1
  table.insert(threads, thread)
end

local entries = nil
local position = 0
local stride = 1
statuses = {}

function init(args)
  local file = os.getenv("BENCH_REQUESTS")
  position = id - 1
  stride = tonumber(os.getenv("BENCH_THREADS") or "1")
  if file and file ~= "" then
    entries = {}
    for line in io.lines(file) do
      local method, path, cookie, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {}
      for name, value in pairs(wrk.headers) do headers[name] = value end  -- the -H headers
      headers["Cookie"] = cookie
      headers["Content-Type"] = "application/x-www-form-urlencoded"
      table.insert(entries, wrk.format(method, path, headers, body))
    end
  end
end

function request()
  if entries == nil then
    return wrk.request()
  end
  local entry = entries[(position % #entries) + 1]
  position = position + stride
  return entry
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for key, value in pairs(counts) do
      merged[key] = (merged[key] or 0) + value
    end
  end
  local parts = {}
  for key, value in pairs(merged) do
    table.insert(parts, string.format('"%s": %d', key, value))
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "socket_errors": %d, "p50": %d, "p95": %d, "p99": %d, "max": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, errors, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, table.concat(parts, ", ")))
end

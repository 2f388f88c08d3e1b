-- wrk script: replay a bench request file (see bench/workload.py), each thread its own share,
-- and count every status so that non-2xx answers are reported, not just 4xx/5xx.
-- Usage: wrk -s bench/replay.lua URL -- FILE THREADS

local threads = {}
local created = 0

function setup(thread)
  thread:set("id", created)
  created = created + 1
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  reqs = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      local method, path, headers, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local h = {}
      for name, value in headers:gmatch("([^\31:]+): ([^\31]*)") do
        h[name] = value
      end
      reqs[#reqs + 1] = wrk.format(method, path, h, body)
    end
    i = i + 1
  end
  idx = 0
  wraps = 0
  non2xx = 0
  counts = {}
end

function request()
  idx = idx + 1
  if idx > #reqs then
    idx = 1
    wraps = wraps + 1
  end
  return reqs[idx]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local non2xx_total, wraps_total, merged = 0, 0, {}
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + (thread:get("non2xx") or 0)
    wraps_total = wraps_total + (thread:get("wraps") or 0)
    for code, n in pairs(thread:get("counts") or {}) do
      merged[code] = (merged[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(merged) do
    parts[#parts + 1] = string.format('"%s": %d', code, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.6f, "non2xx": %d, "wraps": %d, ' ..
    '"socket_errors": %d, "timeouts": %d, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, non2xx_total, wraps_total,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    table.concat(parts, ", ")))
end

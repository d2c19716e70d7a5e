-- bench/wrk/scan.lua: POST /v1/scan with transactions from a JSON Lines file,
-- one after another (each wrk thread starts at a different line).
--
--   wrk -t2 -c32 -d20s --latency -s bench/wrk/scan.lua \
--       http://127.0.0.1:8080/v1/scan -- examples/transactions/sample.jsonl [MAX_BYTES]
--
-- Lines over MAX_BYTES (default 4096) are skipped: the figure is meant for
-- ordinary ~500-byte transactions, not the few 100 KB contract deployments.

local bodies = {}
local next_index = 1
local thread_no = 0

function setup(thread)
  thread:set("thread_no", thread_no)
  thread_no = thread_no + 1
end

function init(args)
  local path = args[1] or "examples/transactions/sample.jsonl"
  local max = tonumber(args[2] or "4096")
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  for line in f:lines() do
    if #line > 0 and #line <= max then
      bodies[#bodies + 1] = line
    end
  end
  f:close()
  assert(#bodies > 0, path .. ": no transaction of at most " .. max .. " bytes")
  next_index = (thread_no * 7) % #bodies + 1
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local body = bodies[next_index]
  next_index = next_index % #bodies + 1
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format("requests: %d in %.1f s = %.0f req/s; errors: connect %d, read %d, " ..
    "write %d, status %d, timeout %d\n", summary.requests, s, summary.requests / s,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("latency p%g: %.2f ms\n", p, latency:percentile(p) / 1000))
  end
end

-- wrk script: POST the bench GraphQL request, each with the token of a random seeded user.
-- usage: wrk ... -s users.lua URL -- BODY_JSON_FILE TOKENS_FILE
-- Requests are formatted once per thread in init(), so the load generator stays cheap (it
-- shares the CPUs with the server). No response() callback for the same reason: answers
-- were checked beforehand (check_tokens.py) and non-2xx/socket errors are counted here.

local requests = {}

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  local body = read_file(args[1]):gsub("%s+$", "")
  for line in io.lines(args[2]) do
    local token = line:match("^%S+%s+(%S+)$")
    if token then
      requests[#requests + 1] = wrk.format("POST", wrk.path, {
        ["Host"] = wrk.host .. ":" .. wrk.port,
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json",
        ["Authorization"] = "Bearer " .. token,
      }, body)
    end
  end
  assert(#requests > 0, "no tokens in " .. args[2])
  -- Threads must not walk the same sequence of users.
  math.randomseed(os.time() + tonumber(tostring(requests):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  return requests[math.random(#requests)]
end

-- One machine-readable line for scripts/bench.sh (latencies in microseconds).
function done(summary, latency, _)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCH_WRK requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "mean_us=%.0f bytes=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout))
end

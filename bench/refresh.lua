-- wrk script of bench/write: refresh_token rotation, every refresh token used exactly once.
-- BENCH_AUTH      the Authorization header value (the client's Basic credentials)
-- BENCH_TOKENS    space-separated live refresh tokens, one per connection and one more per
--                 thread (wrk asks a thread for one request more than it sends as it starts);
--                 each thread takes its share, and each answer's new refresh token replaces
--                 the one just spent (a connection has one request in flight at a time, so a
--                 thread never runs out)
-- Prints one line at the end, as bench/wrk.lua does:
--   BENCH requests=N duration_us=N p50_us=N p99_us=N errors=N non2xx=N

local auth = os.getenv("BENCH_AUTH")
local next_thread = 0

setup = function(thread)
  next_thread = next_thread + 1
  thread:set("id", next_thread)
end

local queue = {}

init = function(args)
  local mine = {}
  local tokens = {}
  for t in string.gmatch(os.getenv("BENCH_TOKENS") or "", "%S+") do
    tokens[#tokens + 1] = t
  end
  local count = tonumber(os.getenv("BENCH_THREADS") or "1")
  for i = id, #tokens, count do
    mine[#mine + 1] = tokens[i]
  end
  queue = mine
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = auth
end

request = function()
  local token = table.remove(queue)
  if token == nil then
    -- Not with enough tokens; a request that fails cleanly (and counts as failed).
    token = "none"
  end
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end

response = function(status, headers, body)
  local token = string.match(body, '"refresh_token":"([^"]+)"')
  if token then
    table.insert(queue, token)
  end
end

done = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

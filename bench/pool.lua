-- wrk script of bench/write: requests that each carry one value from a pool (device codes to
-- poll, access tokens to revoke).
-- BENCH_AUTH         the Authorization header value (the client's Basic credentials)
-- BENCH_BODY         the form body, with `{}` where the value goes
-- BENCH_VALUES       space-separated values, or
-- BENCH_VALUE_FILES  space-separated files of one value per line (for pools too big for the
--                    environment)
-- BENCH_ONCE         1: every value is sent once (each thread takes every BENCH_THREADS-th);
--                    a thread that runs out sends `none` (a request that fails cleanly and
--                    counts as failed). Otherwise each thread cycles through its share.
-- BENCH_THREADS      wrk's thread count
-- Prints one line at the end, as bench/wrk.lua does.

local next_thread = 0

setup = function(thread)
  next_thread = next_thread + 1
  thread:set("id", next_thread)
end

local mine = {}
local at = 0
local once = os.getenv("BENCH_ONCE") == "1"
local body = os.getenv("BENCH_BODY") or ""

init = function(args)
  local all = {}
  for v in string.gmatch(os.getenv("BENCH_VALUES") or "", "%S+") do
    all[#all + 1] = v
  end
  for path in string.gmatch(os.getenv("BENCH_VALUE_FILES") or "", "%S+") do
    for line in io.lines(path) do
      if line ~= "" then
        all[#all + 1] = line
      end
    end
  end
  local count = tonumber(os.getenv("BENCH_THREADS") or "1")
  for i = id, #all, count do
    mine[#mine + 1] = all[i]
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end

request = function()
  local v
  if once then
    v = table.remove(mine) or "none"
  else
    at = at % #mine + 1
    v = mine[at]
  end
  return wrk.format(nil, nil, nil, (string.gsub(body, "{}", v)))
end

done = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

-- The one wrk script of bench/run, configured by environment variables:
--   BENCH_METHOD  GET (default) or POST
--   BENCH_BODY    request body (sent as application/x-www-form-urlencoded)
--   BENCH_AUTH    value of the Authorization header
--   BENCH_PATHS   space-separated paths to cycle through (e.g. 100 tenants' JWKS); without
--                 it every request goes to the URL given on the command line
-- and prints one machine-readable line at the end:
--   BENCH requests=N duration_us=N p50_us=N p99_us=N errors=N non2xx=N

local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")

wrk.method = method
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

local paths_env = os.getenv("BENCH_PATHS")
if paths_env and paths_env ~= "" then
  local paths = {}
  for p in string.gmatch(paths_env, "%S+") do
    paths[#paths + 1] = p
  end
  local i = 0
  request = function()
    i = i % #paths + 1
    return wrk.format(nil, paths[i])
  end
end

done = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

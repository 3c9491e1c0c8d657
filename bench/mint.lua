-- wrk script of bench/write: mint client_credentials access tokens and keep them, one per line,
-- in BENCH_OUT-<thread> (for the revocation scenario's pool).
-- BENCH_AUTH  the Authorization header value (the client's Basic credentials)
-- BENCH_OUT   the files' path prefix

local next_thread = 0

setup = function(thread)
  next_thread = next_thread + 1
  thread:set("id", next_thread)
end

local out

init = function(args)
  out = assert(io.open(os.getenv("BENCH_OUT") .. "-" .. id, "w"))
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end

response = function(status, headers, body)
  local token = string.match(body, '"access_token":"([^"]+)"')
  if token then
    out:write(token, "\n")
    out:flush()
  end
end

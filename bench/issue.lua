-- wrk script for bench/issue: client_credentials token requests with client_secret_basic.
-- BENCH_AUTH holds the whole Authorization header value ("Basic base64(id:secret)").
local auth = os.getenv("BENCH_AUTH")
if auth == nil or auth == "" then
  error("BENCH_AUTH is not set")
end

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = auth

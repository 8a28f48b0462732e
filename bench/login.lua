-- wrk script: log in as the seeded users l<i>@bench.example.com (i = 1..LOGIN_USERS), either
-- through the service (/api/auth/login) or directly at the GoTrue double
-- (LOGIN_PATH=/token?grant_type=password, APIKEY=the double's key).
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

function init(args)
  users = tonumber(os.getenv("LOGIN_USERS") or "100")
  path = os.getenv("LOGIN_PATH") or "/api/auth/login"
  counter = tid * 7919
  wrk.method = "POST"
  wrk.path = path
  wrk.headers["Content-Type"] = "application/json"
  local key = os.getenv("APIKEY")
  if key then wrk.headers["apikey"] = key end
end

function request()
  counter = counter + 1
  local body = string.format('{"email":"l%d@bench.example.com","password":"correct horse battery"}',
    counter % users + 1)
  return wrk.format(nil, path, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end

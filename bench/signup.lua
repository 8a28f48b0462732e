-- wrk script: POST /api/auth/signup with a new email on every request.
-- Emails: b<prefix>-<thread>-<counter>@bench.example.com (prefix from BENCH_PREFIX).
-- BENCH_PROFILE=example: also the fields of examples/profile-schema.example.json, with the
-- username u<prefix><thread>_<counter> (the prefix then of lower-case letters and digits only).
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

function init(args)
  prefix = os.getenv("BENCH_PREFIX") or tostring(os.time())
  example_profile = os.getenv("BENCH_PROFILE") == "example"
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local extra = ""
  if example_profile then
    extra = string.format(
      ',"username":"u%s%d_%d","plan":"pro","age":36,"marketing_opt_in":true,"date_of_birth":"1990-01-31"',
      prefix, tid, counter)
  end
  local body = string.format(
    '{"name":"Bench User","email":"b%s-%d-%d@bench.example.com","password":"correct horse battery","role":"Creator"%s}',
    prefix, tid, counter, extra)
  return wrk.format(nil, nil, nil, body)
end

-- One JSON line with what bench/run.sh needs (wrk itself prints no p95).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end

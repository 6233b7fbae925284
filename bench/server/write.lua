-- Each request writes a new secret whose value is derived from its path,
-- so the run script can read a sample back and check it.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Vault-Token"] = os.getenv("BENCH_TOKEN")
end

function request()
  counter = counter + 1
  local key = string.format("%s-t%d-%d", os.getenv("BENCH_RUN"), id, counter)
  local body = string.format('{"data":{"value":"v-%s"}}', key)
  return wrk.format(nil, "/v1/secret/data/bench/" .. key, nil, body)
end

errors = 0
function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do
    failed = failed + t:get("errors")
  end
  io.write(string.format("non-200: %d\n", failed))
end

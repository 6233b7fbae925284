-- Reads one secret and counts any answer that is not 200.
function init(args)
  wrk.headers["X-Vault-Token"] = os.getenv("BENCH_TOKEN")
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
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

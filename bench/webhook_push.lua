-- wrk script for bench/webhook.sh: POSTs one signed GitHub push delivery over and over. The body
-- (and so X-Hub-Signature-256, which covers only the body) stays the same; X-GitHub-Delivery is
-- unique per request, so every request is a new delivery for the webhook to archive and publish.
-- Environment: FG_BENCH_BODY (file with the body), FG_BENCH_SIGNATURE ("sha256=<hex>"),
-- FG_BENCH_RUN (a prefix that makes the delivery ids of this run unique).
local counter = 0
local threads = {}
thread_id = 0 -- a global: setup() sets it in each thread's own Lua state
local body, signature, run

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("FG_BENCH_BODY"), "rb"))
  body = f:read("*a")
  f:close()
  signature = os.getenv("FG_BENCH_SIGNATURE")
  run = os.getenv("FG_BENCH_RUN") or tostring(os.time())
end

function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = string.format("%s-%d-%d", run, thread_id, counter),
    ["X-Hub-Signature-256"] = signature,
  }
  return wrk.format("POST", nil, headers, body)
end

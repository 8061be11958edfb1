-- wrk script for `make bench` (scripts/bench.py): POST /api/events/book with rotating
-- bearer tokens, a share of the requests to one hot event and the rest spread over
-- other events, 1-4 seats each. Requests are formatted once in init() so the client
-- spends its CPU on sockets, not on Lua.
--
--   wrk ... -s scripts/bench/book.lua URL -- <tokens-file> <hot-event-id> <spread-ids,comma>
--                                            <hot-percent> <ids-out-file> <seed>
-- At the end it writes the request id of every 202 to <ids-out-file> (one a line) and
-- prints one line "BENCH_JSON {...}" with the counts, statuses and latency percentiles.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_no", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  ids_file = args[5]
  local hot = tonumber(args[2])
  local spread = {}
  for id in string.gmatch(args[3], "%d+") do spread[#spread + 1] = tonumber(id) end
  local hot_percent = tonumber(args[4])
  math.randomseed(tonumber(args[6] or "1") * 1000 + thread_no)
  local prepared_max = 8192
  prepared = {}
  for i = 1, prepared_max do
    local token = tokens[((i - 1) * 17 + thread_no * 101) % #tokens + 1]
    local event_id = hot
    if #spread > 0 and math.random(100) > hot_percent then event_id = spread[math.random(#spread)] end
    local body = string.format('{"eventId":%d,"numberOfSeats":%d}', event_id, math.random(4))
    prepared[i] = wrk.format("POST", "/api/events/book",
      {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
  end
  next_request = 0
  statuses = {}
  ids = {}
  id_count = 0
  unparsed = 0
end

function request()
  next_request = next_request % #prepared + 1
  return prepared[next_request]
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status >= 200 and status < 300 then
    local id = string.match(body, '"requestId"%s*:%s*"([%x%-]+)"')
    if id then
      id_count = id_count + 1
      ids[id_count] = id
    else
      unparsed = unparsed + 1
    end
  end
end

local function json_object(map)
  local parts = {}
  for key, value in pairs(map) do parts[#parts + 1] = string.format('"%s":%s', key, tostring(value)) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local all_statuses = {}
  local written = 0
  local not_parsed = 0
  local out = assert(io.open(threads[1]:get("ids_file") or "/dev/null", "w"))
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("statuses") or {}) do
      all_statuses[key] = (all_statuses[key] or 0) + count
    end
    local thread_ids = thread:get("ids") or {}
    for i = 1, #thread_ids do
      out:write(thread_ids[i], "\n")
      written = written + 1
    end
    not_parsed = not_parsed + (thread:get("unparsed") or 0)
  end
  out:close()
  local quantiles = {}
  for _, q in ipairs({50, 90, 99, 99.9}) do
    quantiles[#quantiles + 1] = string.format('"%s":%d', tostring(q), latency:percentile(q))
  end
  io.write("BENCH_JSON ", string.format(
    '{"duration_us":%d,"requests":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"statuses":%s,"ids_written":%d,"ids_unparsed":%d,"latency_us":{"mean":%.1f,"max":%d,"percentiles":{%s}}}',
    summary.duration, summary.requests, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, json_object(all_statuses),
    written, not_parsed, latency.mean, latency.max, table.concat(quantiles, ",")), "\n")
end

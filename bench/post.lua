-- wrk script: POST distinct package ZIPs, one per request, cycling through a pre-generated pool.
-- wrk -t1 -c2 -d10s -s bench/post.lua URL -- <pool.bin> <pool.idx> <first> <last> <token> <expected>
--   pool.bin: the packages back to back; pool.idx: one byte length per line.
--   Packages first .. last-1 (0-based; last = 0: to the end) are sent in order. Wrapping around
--   would send a 到達番号 again (a replay: 200, cheaper), so wraps are counted and reported.
--   <expected>: the state a good answer carries in its JSON ("queued", or "stored" for the floor).

local bodies, count, next_index = {}, 0, 0
local headers = {}
local expected = ""
s200, s202, other, good, wrapped = 0, 0, 0, 0, 0

function init(args)
  local bin = assert(io.open(args[1], "rb"))
  local first, last = tonumber(args[3]), tonumber(args[4])
  local k = 0
  for line in io.lines(args[2]) do
    local body = bin:read(tonumber(line))
    if k >= first and (last == 0 or k < last) then
      count = count + 1
      bodies[count] = body
    end
    k = k + 1
  end
  bin:close()
  assert(count > 0, "no packages selected")
  headers["Content-Type"] = "application/zip"
  headers["Authorization"] = "Bearer " .. args[5]
  expected = '"' .. args[6] .. '"'
end

function request()
  next_index = next_index + 1
  if next_index > count then
    next_index = 1
    wrapped = wrapped + 1
  end
  return wrk.format("POST", "/api/v1/applications", headers, bodies[next_index])
end

function response(status, hdrs, body)
  if status == 202 then s202 = s202 + 1 elseif status == 200 then s200 = s200 + 1 else other = other + 1 end
  if body and string.find(body, expected, 1, true) then good = good + 1 end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local totals = {s200 = 0, s202 = 0, other = 0, good = 0, wrapped = 0}
  for _, thread in ipairs(threads) do
    for key in pairs(totals) do totals[key] = totals[key] + (thread:get(key) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"s200":%d,"s202":%d,"other":%d,"good":%d,"wrapped":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    totals.s200, totals.s202, totals.other, totals.good, totals.wrapped))
end

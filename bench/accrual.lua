-- The accrual bench's client for wrk (a load generator written in C), started by bench/accrual.py:
--
--   wrk -t 16 -c 16 -d 15s -s bench/accrual.lua http://127.0.0.1:PORT -- KEY MEMBERS TAG RETRY_SHARE
--
-- One connection per wrk thread, so each is a closed-loop till: it posts a new purchase for a random
-- member's card, and RETRY_SHARE of them a second time with the same Idempotency-Key once the first
-- answer is in (a till retrying after a timeout), exactly what the Python client does. External ids
-- and keys carry TAG, so a later load never replays an earlier one's. done() prints one JSON line.

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
end

local key, members, tag, retry_share
local counter = 0
local pending = nil

function init(args)
  key = args[1]
  members = tonumber(args[2])
  tag = args[3]
  retry_share = tonumber(args[4])
  math.randomseed(1000 + id)
end

-- The demo and bench card numbers: "991", the member id in 12 digits, a Luhn check digit.
local function luhn(payload)
  local total = 0
  local n = #payload
  for i = 0, n - 1 do
    local d = tonumber(payload:sub(n - i, n - i))
    if i % 2 == 0 then
      d = d * 2
    end
    if d > 9 then
      d = d - 9
    end
    total = total + d
  end
  return payload .. tostring((10 - total % 10) % 10)
end

function request()
  if pending ~= nil then
    local again = pending
    pending = nil
    return again
  end
  counter = counter + 1
  local card = luhn(string.format("991%012d", math.random(1, members)))
  local body = string.format(
    '{"external_id": "bench-%s-%d-%d", "card_number": "%s", "amount": %d, "currency": "EUR"}',
    tag, id, counter, card, math.random(100, 20000))
  local headers = {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("k-%s-%d-%d", tag, id, counter),
  }
  local req = wrk.format("POST", "/api/v1/purchases", headers, body)
  if math.random() < retry_share then
    pending = req
  end
  return req
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
      .. '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

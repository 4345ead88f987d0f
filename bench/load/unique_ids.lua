-- wrk script: the shared harness's bodies.lua with a fresh event id in every event.
--
-- redbrick-relay remembers every event id for days and answers a repeat without
-- delivering it again, so cycling through the same 600 bodies would measure
-- duplicates after the first 600 requests. Here each `"id":"<uuid>"` is replaced
-- per request by a new id of the same length (so Content-Length stays right):
-- the requests are pre-formatted once per thread, split around the ids, and each
-- request is a concatenation, which keeps the generator almost as cheap as the
-- original. bench/run.sh installs it as load/bodies.lua in its copy of the
-- harness, so the sink-alone runs of the same sitting pay the same generator cost.
-- Prints the same "WRK_JSON {...}" summary line as the original.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
   table.insert(threads, thread)
end

local ID_KEY = '"id":"'
local ID_LEN = 36

local pieces = {}
local n = 0
local i = 0
local seq = 0
local prefix = ""

-- Splits a formatted request around its event ids; every id must be 36 characters.
local function split(request)
   local parts = {}
   local pos = 1
   while true do
      local _, key_end = string.find(request, ID_KEY, pos, true)
      if not key_end then break end
      parts[#parts + 1] = string.sub(request, pos, key_end)
      pos = key_end + ID_LEN + 1
      if string.sub(request, pos, pos) ~= '"' then
         error("an event id is not " .. ID_LEN .. " characters long")
      end
   end
   parts[#parts + 1] = string.sub(request, pos)
   return parts
end

function init(args)
   local path = os.getenv("BODIES") or "payloads/bodies.jsonl"
   for line in io.lines(path) do
      if #line > 0 then
         n = n + 1
         local request = wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, line)
         pieces[n] = split(request)
      end
   end
   if n == 0 then error("no bodies in " .. path) end
   i = ((tid or 1) - 1) * math.floor(n / 4)
   -- UUID-shaped: start time and thread make the prefix unique per wrk run and
   -- thread (the harness starts its runs seconds apart); a counter ends each id.
   math.randomseed(os.time() + (tid or 1))
   prefix = string.format("%08x-%04x-4%03x-8%03x-", os.time(), tid or 1,
      math.random(0, 4095), math.random(0, 4095))
end

function request()
   i = i + 1
   if i > n then i = 1 end
   local parts = pieces[i]
   local out = { parts[1] }
   for k = 2, #parts do
      seq = seq + 1
      out[#out + 1] = prefix .. string.format("%012x", seq)
      out[#out + 1] = parts[k]
   end
   return table.concat(out)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"lat_mean_us":%.1f,"lat_stdev_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end

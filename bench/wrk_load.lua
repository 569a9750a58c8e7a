-- wrk script of bench/serve_bench.py (driven by bench/loadgen.py; wrk 4.x).
--
-- Every connection POSTs, in turn, the JSON bodies of the file named by KS_WRK_BODIES (one body per line) to the
-- URL's path. done() prints one line: "KS_WRK " and a JSON object with wrk's measured time (µs), its answers, its
-- error counts and its whole latency histogram as [µs, count] pairs (wrk's coordinated-omission correction is
-- already applied to it at that point; bench/loadgen.py undoes it).

local bodies_file = os.getenv("KS_WRK_BODIES")
local prepared = {}
local sent = 0

function init(args)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   for body in io.lines(bodies_file) do
      if #body > 0 then
         prepared[#prepared + 1] = wrk.format("POST", nil, nil, body)
      end
   end
   if #prepared == 0 then
      error("no request body in KS_WRK_BODIES=" .. tostring(bodies_file))
   end
end

function request()
   sent = sent % #prepared + 1
   return prepared[sent]
end

function done(summary, latency, requests)
   local buckets = {}
   for i = 1, #latency do
      local value, count = latency(i)
      buckets[i] = string.format("[%d,%d]", value, count)
   end
   local e = summary.errors
   io.write(string.format(
      'KS_WRK {"duration_us":%d,"requests":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
      '"timeout":%d},"latency_us":[%s]}\n',
      summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
      table.concat(buckets, ",")))
end

-- wrk script for benchmarks/ingest.py: POST /v1/batch with fresh events per request.
-- Arguments after `--`: events per request (100), and a tag that makes this run's
-- messageIds unlike any earlier run's (LuaJIT's unseeded random repeats itself).
local counter = 0
local size = 100
local thread_tag = tostring(math.random(1, 1e9))
local names = {}
for i = 1, 50 do names[i] = "Event " .. i end

init = function(args)
  if args[1] then size = tonumber(args[1]) end
  if args[2] then thread_tag = args[2] .. "-" .. thread_tag end
end

request = function()
  counter = counter + 1
  local parts = {}
  local stamp = os.date("!%Y-%m-%dT%H:%M:%SZ")
  for i = 1, size do
    parts[i] = string.format(
      '{"type":"track","event":"%s","userId":"user-%d","messageId":"%s-%d-%d",' ..
      '"timestamp":"%s","properties":{"value":%d,"plan":"pro"},' ..
      '"context":{"library":{"name":"analytics-python","version":"2.4.0"}}}',
      names[math.random(1, 50)], math.random(1, 10000), thread_tag, counter, i, stamp,
      math.random(1, 100))
  end
  local body = '{"batch":[' .. table.concat(parts, ",") .. '],"sentAt":"' .. stamp .. '"}'
  return wrk.format("POST", "/v1/batch", nil, body)
end

response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end

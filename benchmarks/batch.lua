-- wrk script for benchmarks/ingest.py: POST /v1/batch with fresh events per request.
-- Arguments after `--`: events per request (100), and a tag that makes this run's
-- messageIds unlike any earlier run's (LuaJIT's unseeded random repeats itself).
local counter = 0
local size = 100
local thread_tag = tostring(math.random(1, 1e9))
local names = {}
for i = 1, 50 do names[i] = "Event " .. i end
-- As ingest.py's client_context: mobile and web libraries, OS names, app versions,
-- locales and page paths, so that every default breakdown dimension has values.
local contexts = {}
local locales = {"en-US", "de-DE", "fr-FR", "pt-BR", "en-GB", "ja-JP"}
local paths = {"/", "/pricing", "/docs", "/checkout", "/orders/1234"}
for n = 0, 419 do
  local locale = locales[n % 6 + 1]
  local kind = n % 4
  if kind == 0 or kind == 1 then
    local lib, os_name = "analytics-ios", "iOS"
    if kind == 1 then lib, os_name = "analytics-android", "Android" end
    contexts[n + 1] = string.format(
      '{"library":{"name":"%s","version":"4.1.0"},"locale":"%s","ip":"198.51.100.%d",' ..
      '"os":{"name":"%s","version":"17.1"},"app":{"name":"Shop","version":"5.%d"}}',
      lib, locale, n % 250, os_name, n % 7)
  elseif kind == 2 then
    local path = paths[n % 5 + 1]
    contexts[n + 1] = string.format(
      '{"library":{"name":"analytics.js","version":"4.1.0"},"locale":"%s",' ..
      '"ip":"198.51.100.%d","page":{"path":"%s","url":"https://shop.example%s?utm=x"}}',
      locale, n % 250, path, path)
  else
    contexts[n + 1] = string.format(
      '{"library":{"name":"analytics-python","version":"4.1.0"},"locale":"%s",' ..
      '"ip":"198.51.100.%d"}', locale, n % 250)
  end
end

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
      '"timestamp":"%s","properties":{"value":%d,"plan":"pro"},"context":%s}',
      names[math.random(1, 50)], math.random(1, 10000), thread_tag, counter, i, stamp,
      math.random(1, 100), contexts[math.random(1, #contexts)])
  end
  local body = '{"batch":[' .. table.concat(parts, ",") .. '],"sentAt":"' .. stamp .. '"}'
  return wrk.format("POST", "/v1/batch", nil, body)
end

response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end

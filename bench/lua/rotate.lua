-- POST bodies (one per line) with tokens (one per line, or none) in turn, counting X-Cache answers
-- and GraphQL userErrors: the response cache's miss run and the flash-sale burst.
-- wrk -s bench/lua/rotate.lua <url> -- <bodies file> [tokens file]
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function lines(path)
  local found = {}
  if path == nil or path == "" then
    return found
  end
  for line in io.lines(path) do
    if line ~= "" then
      table.insert(found, line)
    end
  end
  return found
end

function init(args)
  bodies = lines(args[1])
  tokens = lines(args[2])
  -- Threads start at different offsets so they do not send the same sequence.
  index = math.random(1, #bodies)
  hits, misses, orders, rejected = 0, 0, 0, 0
end

function request()
  index = index + 1
  local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
  if #tokens > 0 then
    headers["Authorization"] = "Bearer " .. tokens[(index % #tokens) + 1]
  end
  return wrk.format("POST", nil, headers, bodies[(index % #bodies) + 1])
end

function response(status, headers, body)
  local cache = headers["X-Cache"] or headers["x-cache"]
  if cache == "HIT" then
    hits = hits + 1
  elseif cache == "MISS" then
    misses = misses + 1
  end
  if string.find(body, '"orderNo"', 1, true) then
    orders = orders + 1
  elseif string.find(body, '"userErrors":[{', 1, true) then
    rejected = rejected + 1
  end
end

function done(summary, latency, requests)
  local h, m, o, r = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    h = h + thread:get("hits")
    m = m + thread:get("misses")
    o = o + thread:get("orders")
    r = r + thread:get("rejected")
  end
  io.write(string.format("rotate: hits=%d misses=%d orders=%d rejected=%d\n", h, m, o, r))
end

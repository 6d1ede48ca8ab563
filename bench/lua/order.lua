-- PlaceOrder with a fresh idempotency key per request (a repeated key would answer the earlier order
-- without doing the work), optionally paced, counting orders placed and userErrors answered.
-- wrk -s bench/lua/order.lua <url> -- <body file with IDEMPOTENCY_KEY> <bearer token> <key prefix> [delay ms]
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  template = file:read("*a"):gsub("\n$", "")
  file:close()
  token = args[2]
  prefix = args[3] .. "-" .. id
  pause = tonumber(args[4] or "0")
  sent, orders, rejected = 0, 0, 0
end

function request()
  sent = sent + 1
  local body = template:gsub("IDEMPOTENCY_KEY", prefix .. "-" .. sent)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }
  return wrk.format("POST", nil, headers, body)
end

function delay()
  return pause
end

function response(status, headers, body)
  if string.find(body, '"orderNo"', 1, true) then
    orders = orders + 1
  elseif string.find(body, '"userErrors":[{', 1, true) then
    rejected = rejected + 1
  end
end

function done(summary, latency, requests)
  local o, r = 0, 0
  for _, thread in ipairs(threads) do
    o = o + thread:get("orders")
    r = r + thread:get("rejected")
  end
  io.write(string.format("rotate: orders=%d rejected=%d\n", o, r))
end

-- One POST body, sent as fast as the connections allow (max throughput runs).
-- wrk -s bench/lua/post.lua <url> -- <body file> [bearer token]
function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a"):gsub("\n$", "")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
  if args[2] ~= nil and args[2] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
end

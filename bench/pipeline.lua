-- pipeline.lua - wrk script: send DEPTH requests in one write (HTTP/1.1
-- pipelining) and wait for all DEPTH responses before the next write.
--
--   wrk -t1 -c64 -d5s -s bench/pipeline.lua http://127.0.0.1:8080/ -- 16
--
-- DEPTH is the first script argument (after "--"), default 16.  wrk counts
-- one request per response, so Requests/sec is responses per second.  The
-- request path is the one in the URL; headers given with -H are included.

init = function(args)
   local depth = tonumber(args[1]) or 16
   local path = wrk.path
   if path == nil or path == "" then path = "/" end
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, path)
   end
   pipelined = table.concat(r)
end

request = function()
   return pipelined
end

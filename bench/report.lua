-- report.lua - appended to every wrk script by bench/run.sh: prints one
-- machine-readable line with the exact totals (wrk's human summary rounds).
-- Latencies are in microseconds, duration in microseconds, bytes as read.

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
      summary.requests, summary.bytes, summary.duration,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99)))
end

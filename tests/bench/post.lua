-- SPDX-License-Identifier: Apache-2.0
-- wrk script: POSTs one AdmissionReview (the file named by BENCH_BODY) as the API server does,
-- on keep-alive connections, or with "Connection: close" when BENCH_CLOSE=1 (a full TLS
-- handshake per request). At the end prints one "BENCH key=value ..." line that run.sh reads.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, */*"
wrk.headers["User-Agent"] = "kube-apiserver-admission"
if os.getenv("BENCH_CLOSE") == "1" then
    wrk.headers["Connection"] = "close"
end

-- The share of requests slower than `us`, found by bisecting the latency percentiles.
local function share_above(latency, us)
    if latency.max <= us then
        return 0
    end
    local lo, hi = 0.0, 100.0
    for _ = 1, 40 do
        local mid = (lo + hi) / 2
        if latency:percentile(mid) > us then hi = mid else lo = mid end
    end
    return (100.0 - hi) / 100.0
end

function done(summary, latency, requests)
    local e = summary.errors
    local above = tonumber(os.getenv("BENCH_ABOVE_US") or "")
    io.write(string.format(
        "BENCH requests=%d duration_us=%d bytes=%d errors=%d p50_us=%.1f p99_us=%.1f " ..
        "p999_us=%.1f max_us=%.1f above=%s\n",
        summary.requests, summary.duration, summary.bytes,
        e.connect + e.read + e.write + e.status + e.timeout,
        latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
        above and string.format("%.6f", share_above(latency, above)) or "nan"))
end

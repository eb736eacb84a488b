#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""One load run at a fixed offered rate: h2load posts a review on N keep-alive connections, each
connection at rate/N requests a second (HTTP/1.1, one request in flight per connection, as the
API server sends them), after a warm-up second in which the connections and their TLS
handshakes are made. Unlike wrk's closed loop at saturation, the latency then shows what one
request costs when the server is not busy with 31 others.

The server's CPU (the scheduler's run time of every thread of the given processes, in
nanoseconds: at a few percent of a core, 10 ms ticks would be too coarse) is read at the start
and at the end of a window inside the measured part, and divided by the requests that started
in it.

h2load paces each connection on its own timer, and its timers fire together: how bursty the
arrivals are is recorded too, as the share of request starts (from h2load's per-request log) less
than BURST_US after the previous one.

Appends one line to the results file (JSON):
  {"target", "payload", "webhook", "mode": "rate" (or --mode), "round", "connections", "offered":
   req/s asked for, "requests", "duration_us", "errors": failed, errored, timed out or non-2xx,
   "p50_us", "p99_us", "p999_us", "max_us", "cpu_ticks": the window's CPU in clock ticks
   (fractional), "cpu_requests": requests in the CPU window, "burst_share": the share of starts
   less than BURST_US after the previous start}

usage: fixed_rate.py --url URL --connect-to HOST:PORT --body FILE --rate R --results FILE
                     --target T --payload P --webhook W --pids "PID ..." [--connections 32]
                     [--duration 5] [--round 1] [--load-cpu 1] [--log FILE] [--mode rate]
"""

import argparse
import json
import os
import re
import subprocess
import threading
import time

WARM_UP = 1.0  # seconds: h2load's --warm-up-time, when the connections are made
MARGIN = 0.2  # seconds kept between the CPU window and the ends of the measured part
BURST_US = 50  # a request start this close after the previous one counts as sent together


TICK = os.sysconf("SC_CLK_TCK")


def cpu_ns(pids):
    """The run time of every thread of the processes, in nanoseconds."""
    ns = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns += int(f.read().split()[0])
            except FileNotFoundError:  # a thread that ended meanwhile
                pass
    return ns


def cpu_ticks(pids):
    """The run time of every thread of the processes, in clock ticks (from nanoseconds)."""
    return cpu_ns(pids) * TICK / 1e9


# The request headers, as the API server sends them.
HEADERS = ["-H", "Content-Type: application/json", "-H", "Accept: application/json, */*",
           "-H", "User-Agent: kube-apiserver-admission"]


def h2load_errors(out, who):
    """h2load's failed, errored and timed-out requests and its non-2xx answers, from its
    summary; exits when h2load failed."""
    if out.returncode != 0:
        raise SystemExit(f"{who}: h2load failed ({out.returncode}): {out.stdout}{out.stderr}")
    # requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
    m = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out.stdout)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out.stdout)
    if not m or not codes:
        raise SystemExit(f"{who}: unexpected h2load output: {out.stdout}")
    return sum(int(x) for x in m.groups()[2:]) + sum(int(x) for x in codes.groups()[1:])


def percentile(sorted_values, p):
    """The smallest value with at least p of the values at or below it."""
    if not sorted_values:
        return float("nan")
    i = max(0, min(len(sorted_values) - 1, int(p * len(sorted_values) + 0.999999) - 1))
    return sorted_values[i]


def burst_share(starts_us):
    """The share of request starts (µs, any order) less than BURST_US after the previous one;
    NaN for fewer than two."""
    starts = sorted(starts_us)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    return sum(1 for g in gaps if g < BURST_US) / len(gaps) if gaps else float("nan")


def main():
    ap = argparse.ArgumentParser()
    for name in ("url", "connect-to", "body", "results", "target", "payload", "webhook", "pids"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests a second, all connections")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--load-cpu", default="1")
    ap.add_argument("--mode", default="rate", help="the row's mode (rate; floor for the rows "
                    "of one connection at a low rate)")
    ap.add_argument("--log", help="where h2load writes one line per request (default: beside "
                    "the results)")
    a = ap.parse_args()
    pids = a.pids.split()
    log = a.log or os.path.join(os.path.dirname(os.path.abspath(a.results)), "h2load.log")
    if os.path.exists(log):
        os.unlink(log)

    window = {}

    def sample():
        # The CPU window: MARGIN after the warm-up until MARGIN before the end.
        time.sleep(WARM_UP + MARGIN)
        window["t0"], window["c0"] = time.time(), cpu_ticks(pids)
        time.sleep(a.duration - 2 * MARGIN)
        window["t1"], window["c1"] = time.time(), cpu_ticks(pids)

    sampler = threading.Thread(target=sample)
    cmd = ["taskset", "-c", a.load_cpu, "h2load", "--h1", "-c", str(a.connections),
           "--rps", f"{a.rate / a.connections:.6f}", "-D", str(a.duration),
           f"--warm-up-time={WARM_UP:g}", "-d", a.body, *HEADERS,
           f"--connect-to={a.connect_to}", f"--log-file={log}", a.url]
    sampler.start()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.duration + 60)
    sampler.join()
    if "c1" not in window:
        raise SystemExit("fixed_rate.py: the CPU window was not sampled")
    errors = h2load_errors(out, "fixed_rate.py")

    starts, lat = [], []
    with open(log) as f:
        for line in f:
            start_us, _status, us = line.split("\t")[:3]
            starts.append(int(start_us))
            lat.append(float(us))
    lat.sort()
    burst = burst_share(starts)
    starts = [s / 1e6 for s in starts]
    in_window = sum(1 for s in starts if window["t0"] <= s < window["t1"])
    row = {"target": a.target, "payload": a.payload, "webhook": a.webhook, "mode": a.mode,
           "round": a.round, "connections": a.connections, "offered": a.rate,
           "requests": len(lat), "duration_us": a.duration * 1000000, "errors": errors,
           "p50_us": percentile(lat, 0.50), "p99_us": percentile(lat, 0.99),
           "p999_us": percentile(lat, 0.999), "max_us": lat[-1] if lat else float("nan"),
           "above": "nan", "cpu_ticks": window["c1"] - window["c0"], "cpu_requests": in_window,
           "burst_share": burst, "hwm_kib": 0}
    with open(a.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{a.target:16} {a.payload:20} {a.webhook:8} {a.mode} {a.rate:7.0f}/s: "
          f"{len(lat) / a.duration:7.0f} req/s  p50 {row['p50_us'] / 1000:.2f}  p99 "
          f"{row['p99_us'] / 1000:.2f} ms  starts <{BURST_US} µs apart {burst * 100:.0f}%  "
          f"errors {errors}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Servers' CPU per request measured side by side: every server named by --side is loaded at the
same time, each by its own wrk (-t1, keep-alive, tests/bench/post.lua, the same body) on the load
CPU, for the same time, while the servers share their CPU. Each round gives every server's CPU per
request over the same window, so a ratio between two of them is taken within one round, where a
slow or fast spell of the machine falls on both, instead of between runs seconds apart.

The window: every wrk runs WARM_UP + duration + TAIL seconds (rounded up); the window starts
WARM_UP after they start (their connections and TLS handshakes are made by then) and lasts the
duration, so it holds neither the handshakes nor the ends of the runs, when one server may run
alone. At each end of the window each server's answered-request counter (tableguard's
tableguard_admission_requests_total on its metrics listener; nginx's stub_status "requests") and
its CPU (the scheduler's run time of every thread of its processes, /proc/PID/task/*/schedstat,
in nanoseconds) are read back to back, in the same order at both ends. CPU per request is the
window's CPU over the window's requests. nginx counts a request when its first bytes arrive and
tableguard when it is answered; with one request in flight per connection the two differ by at
most the connections at each end (32 of tens of thousands).

With one --side the same measurement is a server alone.

Appends one line per server and round to the results file (JSON):
  {"target", "payload", "webhook", "mode": "paired", "round", "group": the targets of the round,
   joined by "+", "connections", "requests", "duration_us", "errors", "p50_us", "p99_us",
   "p999_us", "max_us" (wrk's, the whole run), "cpu_ns", "cpu_requests", "window_us": the
   window's, "cpu_ticks": cpu_ns in clock ticks, "run_cpu_ns": the CPU from before the wrk
   runs start to after they end, handshakes included, for wrk's "requests"}

usage: paired.py --results FILE --payload P --webhook W --body FILE --round N
                 --side 'TARGET PIDS URL COUNTER_URL' [--side ...] [--duration 5]
                 [--connections 32] [--load-cpu 1] [--mode paired]
       (PIDS: comma-separated; COUNTER_URL: plain HTTP)
"""

import argparse
import json
import math
import os
import re
import subprocess
import time
import urllib.request

from fixed_rate import TICK, cpu_ns

WARM_UP = 0.5  # seconds before the window: 32 handshakes take a few milliseconds
TAIL = 0.5  # at least this many seconds of load after the window
HERE = os.path.dirname(os.path.abspath(__file__))


def answered(url):
    """The server's request counter: nginx's stub_status, or the sum of tableguard's
    tableguard_admission_requests_total series."""
    with urllib.request.urlopen(url, timeout=5) as f:
        text = f.read().decode()
    if text.startswith("Active connections:"):
        # Active connections: N / server accepts handled requests / A H R / Reading...
        return int(text.splitlines()[2].split()[2])
    total = sum(float(m.group(1)) for m in
                re.finditer(r"^tableguard_admission_requests_total(?:\{[^}]*\})? (\S+)$", text,
                            re.M))
    return int(total)


def wrk_result(out, who):
    m = re.search(r"^BENCH (.*)$", out, re.M)
    if not m:
        raise SystemExit(f"paired.py: wrk for {who} said: {out}")
    return {k: float(v) if "." in v or v == "nan" else int(v)
            for k, v in (kv.split("=") for kv in m.group(1).split())}


def main():
    ap = argparse.ArgumentParser()
    for name in ("results", "payload", "webhook", "body"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--side", action="append", required=True,
                    help="'TARGET PIDS URL COUNTER_URL', PIDS comma-separated")
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--load-cpu", default="1")
    ap.add_argument("--mode", default="paired")
    a = ap.parse_args()
    sides = []
    for s in a.side:
        target, pids, url, counter = s.split()
        sides.append({"target": target, "pids": pids.split(","), "url": url, "counter": counter})
    env = dict(os.environ, BENCH_BODY=a.body, BENCH_CLOSE="0")
    before = [cpu_ns(s["pids"]) for s in sides]
    secs = math.ceil(WARM_UP + a.duration + TAIL)  # wrk takes whole seconds
    wrks = [subprocess.Popen(["taskset", "-c", a.load_cpu, "wrk", "-t1", f"-c{a.connections}",
                              f"-d{secs}s", "--timeout", "5s", "-s",
                              os.path.join(HERE, "post.lua"), s["url"]],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for s in sides]
    start = time.monotonic()

    def sample():
        return [(answered(s["counter"]), cpu_ns(s["pids"]), time.monotonic()) for s in sides]

    time.sleep(max(0.0, start + WARM_UP - time.monotonic()))
    first = sample()
    time.sleep(max(0.0, start + WARM_UP + a.duration - time.monotonic()))
    last = sample()
    outs = [w.communicate(timeout=secs + 60)[0] for w in wrks]
    after = [cpu_ns(s["pids"]) for s in sides]
    group = "+".join(s["target"] for s in sides)
    rows = []
    for s, out, (n0, c0, t0), (n1, c1, t1), b0, b1 in zip(sides, outs, first, last, before,
                                                          after):
        w = wrk_result(out, s["target"])
        rows.append({"target": s["target"], "payload": a.payload, "webhook": a.webhook,
                     "mode": a.mode, "round": a.round, "group": group,
                     "connections": a.connections, "requests": w["requests"],
                     "duration_us": w["duration_us"], "errors": w["errors"],
                     "p50_us": w["p50_us"], "p99_us": w["p99_us"], "p999_us": w["p999_us"],
                     "max_us": w["max_us"], "above": "nan", "cpu_ns": c1 - c0,
                     "cpu_requests": n1 - n0, "window_us": round((t1 - t0) * 1e6),
                     "cpu_ticks": (c1 - c0) * TICK / 1e9, "run_cpu_ns": b1 - b0,
                     "hwm_kib": 0})
    with open(a.results, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"{a.payload:18} {a.webhook:8} round {a.round}: " + "  ".join(
        f"{r['target']} {r['cpu_ns'] / 1000 / max(1, r['cpu_requests']):.1f} µs "
        f"({r['cpu_requests'] * 1e6 / r['window_us']:.0f} req/s)" for r in rows))


if __name__ == "__main__":
    main()

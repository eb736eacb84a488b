#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""One run of the reload-under-load rows: h2load's closed loop (HTTP/1.1, N keep-alive
connections each sending its next request as soon as the last is answered, as wrk does), after a
warm-up second in which the connections and their TLS handshakes are made and which is not
measured, for 2 x DURATION seconds, with one line per request (h2load's log).

From the measured part's first second on, once a second: a SIGHUP to the server and a rewrite
of its policy file in turn (the watcher reloads it), 2 x DURATION - 2 of them. Each request is
counted in the half second after a trigger that it ended in (a "reload window": a SIGHUP or a
changed file reloaded there, the serving thread waits for whatever the reload makes it wait
for), or in the rest of the run (the "quiet" half seconds between them, and the time before the
first). The reload windows are judged against the p99.9 of the quiet requests of the same run:
the same server, connections and second of the host, interleaved every half second. With --dry
the same windows are kept and nothing is sent: the same comparison made where nothing happens,
for its noise.

Appends one line to the results file (JSON):
  {"target": "tableguard", "payload", "webhook", "mode": "reload" or "reload-control", "round",
   "connections", "requests", "duration_us", "errors", "p50_us", "p99_us", "p999_us", "max_us"
   (all requests), "above": the share of the reload windows' requests above the quiet p99.9,
   "baseline_p999_us": the quiet requests' p99.9, "window_requests", "quiet_requests",
   "window_above": requests above it in the windows, "window_stalls", "quiet_stalls": the
   stalls the requests above it came from (ending within 5 ms of each other), "sighups",
   "rewrites", "window_s", "cpu_ticks", "hwm_kib": 0}

usage: reload_run.py --url URL --connect-to HOST:PORT --body FILE --results FILE --payload P
                     --webhook W --pid PID --policy FILE --source FILE [--dry] [--round 1]
                     [--connections 32] [--duration 5] [--load-cpu 1] [--log FILE]
"""

import argparse
import bisect
import json
import os
import signal
import subprocess
import threading
import time

from fixed_rate import HEADERS, h2load_errors, percentile

WARM_UP = 1.0  # seconds: h2load's --warm-up-time, not measured
WINDOW = 0.5  # seconds after a trigger that its requests are counted in
STALL_GAP = 0.005  # seconds: requests above the p99.9 ending closer than this share one stall


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def stalls(requests, base):
    """How many stalls the requests above `base` came from: a stall of the server delays every
    request in flight, and they end together when it resumes."""
    ends = sorted(end for lat, end in requests if lat > base)
    return sum(1 for i, end in enumerate(ends) if i == 0 or end - ends[i - 1] > STALL_GAP)


def main():
    ap = argparse.ArgumentParser()
    for name in ("url", "connect-to", "body", "results", "payload", "webhook", "pid", "policy",
                 "source"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--dry", action="store_true", help="keep the windows, send nothing")
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--load-cpu", default="1")
    ap.add_argument("--log", help="h2load's per-request log (default: beside the results)")
    a = ap.parse_args()
    pid = int(a.pid)
    length = 2 * a.duration
    triggers = length - 2
    log = a.log or os.path.join(os.path.dirname(os.path.abspath(a.results)), "reload-h2load.log")
    if os.path.exists(log):
        os.unlink(log)
    with open(a.source) as f:
        source = f.read()

    fired = []

    def trigger():
        # The measured part starts WARM_UP after h2load; the first trigger a second into it.
        time.sleep(WARM_UP + 1.0)
        start = time.time()
        for i in range(triggers):
            time.sleep(max(0.0, start + i - time.time()))
            fired.append(time.time())
            if a.dry:
                continue
            if i % 2 == 0:
                os.kill(pid, signal.SIGHUP)
            else:
                tmp = a.policy + ".new"
                with open(tmp, "w") as f:
                    f.write(f"{source}# revision {a.round}.{i}\n")
                os.rename(tmp, a.policy)

    sender = threading.Thread(target=trigger)
    cmd = ["taskset", "-c", a.load_cpu, "h2load", "--h1", "-c", str(a.connections),
           "-D", str(length), f"--warm-up-time={WARM_UP:g}", "-d", a.body, *HEADERS,
           f"--connect-to={a.connect_to}", f"--log-file={log}", a.url]
    c0 = cpu_ticks(pid)
    sender.start()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=length + 60)
    sender.join()
    c1 = cpu_ticks(pid)
    errors = h2load_errors(out, "reload_run.py")

    window, quiet, every = [], [], []  # (latency, end) of each request
    with open(log) as f:
        for line in f:
            start_us, _status, us = line.split("\t")[:3]
            lat = float(us)
            end = int(start_us) / 1e6 + lat / 1e6
            k = bisect.bisect_right(fired, end) - 1
            (window if k >= 0 and end < fired[k] + WINDOW else quiet).append((lat, end))
            every.append(lat)
    every.sort()
    base = percentile(sorted(lat for lat, _ in quiet), 0.999)
    above = sum(1 for lat, _ in window if lat > base)
    row = {"target": "tableguard", "payload": a.payload, "webhook": a.webhook,
           "mode": "reload-control" if a.dry else "reload", "round": a.round,
           "connections": a.connections, "requests": len(every), "duration_us": length * 1000000,
           "errors": errors, "p50_us": percentile(every, 0.50), "p99_us": percentile(every, 0.99),
           "p999_us": percentile(every, 0.999), "max_us": every[-1] if every else float("nan"),
           "above": f"{above / len(window):.6f}" if window else "nan",
           "baseline_p999_us": base, "window_requests": len(window),
           "quiet_requests": len(quiet), "window_above": above,
           "window_stalls": stalls(window, base), "quiet_stalls": stalls(quiet, base),
           "sighups": 0 if a.dry else (triggers + 1) // 2,
           "rewrites": 0 if a.dry else triggers // 2, "window_s": WINDOW,
           "cpu_ticks": c1 - c0, "hwm_kib": 0}
    with open(a.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"tableguard       {a.payload:20} {a.webhook:8} {row['mode']:14} round {a.round}: "
          f"{len(every) / length:7.0f} req/s  quiet p99.9 {base / 1000:.2f} ms  reload windows "
          f"above it {above} of {len(window)} ({row['window_stalls']} stalls; between reloads "
          f"{row['quiet_stalls']})  errors {errors}")


if __name__ == "__main__":
    main()

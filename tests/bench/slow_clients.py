#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The p99 of normal traffic beside hostile slow clients: wrk posts the 1-component review to
/validate on keep-alive connections, first alone, then beside a slowloris client (many
connections, each sending one header line a second and never finishing its headers) and a
slow-body client (one request announcing a body at --max-body, sending a byte every 0.5 s). Each
slow client opens a new connection whenever the server closes one. The server runs with its
default deadlines (--request-timeout 10 s), so each run sees the slow connections closed.

Writes one line per run to the results file (JSON):
  {"kind": "slow-clients", "beside": "none" | "slowloris+slow-body", "round": N,
   "payload": "c1-trait-allow", "webhook": "validate", "connections": 32,
   "slowloris_connections": N, "requests", "duration_us", "errors", "p50_us", "p99_us",
   "p999_us", "max_us": wrk's figures, "slow_closed": slow connections the server closed during
   the run, "request_timeouts": the rise of tableguard_http_rejected_total{reason="request_timeout"}}

usage: slow_clients.py --tableguard BIN --certs DIR --payloads DIR --policy FILE --results FILE
                       [--duration 12] [--rounds 2] [--connections 32] [--threads 1]
                       [--server-cpu 0] [--load-cpu 1] [--slowloris 128]
"""

import argparse
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PAYLOAD, HOOK = "c1-trait-allow", "validate"
MAX_BODY = 38797312  # the server's default --max-body


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class SlowClients:
    """A slowloris client and a slow-body client, each in a thread, reconnecting on close."""

    def __init__(self, port, ca, slowloris):
        self.port, self.slowloris = port, slowloris
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.check_hostname = False
        self.stop = threading.Event()
        self.closed = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loris, daemon=True),
                        threading.Thread(target=self.body, daemon=True)]

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return self.ctx.wrap_socket(raw, server_hostname="localhost")

    def lost(self):
        with self.lock:
            self.closed += 1

    def open_loris(self):
        s = self.connect()
        s.sendall(f"POST /{HOOK}?timeout=10s HTTP/1.1\r\nHost: localhost\r\n".encode())
        return s

    def loris(self):
        conns = []
        while not self.stop.is_set() and len(conns) < self.slowloris:
            try:
                conns.append(self.open_loris())
            except OSError:
                time.sleep(0.05)
        n = 0
        while not self.stop.is_set():
            for i in range(len(conns)):
                if self.stop.is_set():
                    break
                try:
                    if conns[i] is None:
                        conns[i] = self.open_loris()
                    else:
                        conns[i].sendall(f"X-Trickle-{n}: {'a' * 16}\r\n".encode())
                except OSError:
                    if conns[i] is not None:
                        self.lost()
                        conns[i].close()
                    conns[i] = None  # the next round opens it again
            n += 1
            self.stop.wait(1.0)
        for s in conns:
            if s is not None:
                s.close()

    def body(self):
        while not self.stop.is_set():
            try:
                s = self.connect()
                s.sendall((f"POST /{HOOK}?timeout=10s HTTP/1.1\r\nHost: localhost\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {MAX_BODY}\r\n\r\n{{"
                           ).encode())
                while not self.stop.wait(0.5):
                    s.sendall(b" ")
                s.close()
            except OSError:
                self.lost()
                time.sleep(0.05)

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def timeouts(mport):
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
    m = re.search(r'tableguard_http_rejected_total\{reason="request_timeout"\} (\d+)', text)
    return int(m.group(1)) if m else 0


def wrk(a, port):
    env = dict(os.environ, BENCH_BODY=os.path.join(a.payloads, PAYLOAD + ".json"),
               BENCH_CLOSE="0")
    out = subprocess.run(["taskset", "-c", str(a.load_cpu), "wrk", "-t1", f"-c{a.connections}",
                          f"-d{a.duration}s", "--timeout", "5s", "-s",
                          os.path.join(HERE, "post.lua"),
                          f"https://127.0.0.1:{port}/{HOOK}?timeout=10s"],
                         env=env, capture_output=True, text=True, check=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"slow_clients.py: wrk said: {out}")
    return {k: float(v) if "." in v else int(v) if v.isdigit() else v
            for k, v in (kv.split("=") for kv in line.split()[1:])}


def main():
    ap = argparse.ArgumentParser()
    for name in ("tableguard", "certs", "payloads", "policy", "results"):
        ap.add_argument("--" + name, required=True)
    for name, default in (("duration", 12), ("rounds", 2), ("connections", 32), ("threads", 1),
                          ("server-cpu", 0), ("load-cpu", 1), ("slowloris", 128)):
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    os.sched_setaffinity(0, {a.load_cpu})
    port, mport = free_ports(2)
    log = open(os.path.join(os.path.dirname(os.path.abspath(a.results)), "slow-clients.log"),
               "ab")
    server = subprocess.Popen(
        ["taskset", "-c", str(a.server_cpu), a.tableguard, "serve", "--policy", a.policy,
         "--tls-cert", os.path.join(a.certs, "tls.crt"), "--tls-key",
         os.path.join(a.certs, "tls.key"), "--listen", f"127.0.0.1:{port}", "--metrics-listen",
         f"127.0.0.1:{mport}", "--threads", str(a.threads), "--shutdown-delay", "0",
         "--log-level", "warn"], stderr=log)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{mport}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("slow_clients.py: tableguard did not become ready")
        for r in range(1, a.rounds + 1):
            for beside in ("none", "slowloris+slow-body"):
                slow = None
                if beside != "none":
                    slow = SlowClients(port, os.path.join(a.certs, "ca.crt"), a.slowloris)
                    slow.start()
                    time.sleep(2)  # the slow connections are open before the load starts
                t0 = timeouts(mport)
                res = wrk(a, port)
                closed = 0
                if slow is not None:
                    closed = slow.closed
                    slow.join()
                row = {"kind": "slow-clients", "beside": beside, "round": r,
                       "payload": PAYLOAD, "webhook": HOOK, "connections": a.connections,
                       "slowloris_connections": a.slowloris if slow else 0}
                row.update({k: res[k] for k in ("requests", "duration_us", "errors", "p50_us",
                                                 "p99_us", "p999_us", "max_us")})
                row.update(slow_closed=closed, request_timeouts=timeouts(mport) - t0)
                with open(a.results, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"slow clients: beside {beside:<20} round {r}: "
                      f"{res['requests'] * 1e6 / res['duration_us']:7.0f} req/s  "
                      f"p99 {res['p99_us'] / 1000:6.2f} ms  errors {res['errors']}  "
                      f"slow connections closed {closed}", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: Apache-2.0
"""Graceful drain: on SIGTERM /readyz fails at once, requests keep being answered for
--shutdown-delay, then the listener closes, every request in flight is answered, and the process
exits 0; --drain-timeout bounds the wait for a request that never completes."""

import http.client
import signal
import socket
import threading
import time

from conftest import WRAPPER, application, check_envelope, review, table
from test_hostile import read_response

SLOW = 5 if WRAPPER else 1  # valgrind makes everything slower


class Worker(threading.Thread):
    """A client like the API server's: a keep-alive connection, reopened when the server closes
    it, sending reviews back to back. Records every outcome."""

    def __init__(self, server, stop):
        super().__init__(daemon=True)
        self.server, self.stop = server, stop
        self.ok, self.refused, self.dropped = [], [], []

    def run(self):
        conn = None
        rev = review(application([table("orders", "orders-prod")]))
        while not self.stop.is_set():
            if conn is None:
                conn = self.server.connect()
                try:
                    conn.connect()
                except OSError:
                    # Not accepted: nothing was sent, so nothing was lost; the API server would
                    # go to another replica.
                    self.refused.append(time.monotonic())
                    conn = None
                    time.sleep(0.01)
                    continue
            try:
                status, resp = self.server.admit("validate", rev, conn=conn)
                assert status == 200
                check_envelope(resp, rev)
                self.ok.append(time.monotonic())
            except (OSError, http.client.HTTPException, AssertionError, ValueError) as e:
                self.dropped.append((time.monotonic(), repr(e)))
                conn.close()
                conn = None
                continue
            if conn.sock is None:  # the answer said Connection: close
                conn = None


def slow_request(server, body):
    """Sends the headers and the first byte of a body and returns the socket to finish later."""
    s = server.context().wrap_socket(socket.create_connection(("127.0.0.1", server.port)),
                                     server_hostname="localhost")
    s.sendall(b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:1])
    return s


def finish(sock, body):
    sock.sendall(body[1:])
    status, _, _ = read_response(sock)
    sock.close()
    return status


def readyz(server):
    try:
        return server.plain("/readyz")[0]
    except OSError:
        return 0


def test_sigterm_under_keepalive_load_drops_nothing(start_server):
    delay = 2 * SLOW
    server = start_server(shutdown_delay=delay, drain_timeout=20, threads=2)
    stop = threading.Event()
    workers = [Worker(server, stop) for _ in range(8)]
    for w in workers:
        w.start()
    rev = review(application([table("orders", "orders-prod")]))
    import json
    body = json.dumps(rev).encode()
    slow = [slow_request(server, body) for _ in range(3)]
    time.sleep(1)
    assert all(w.ok for w in workers), "load did not start"

    t_term = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    # Readiness fails at once.
    while readyz(server) != 503:
        assert time.monotonic() - t_term < 0.5 * SLOW, "/readyz still ready after SIGTERM"
        time.sleep(0.01)
    assert server.request("GET", "/healthz")[0] == 200, "liveness holds while draining"
    # New connections are still accepted during the delay.
    assert server.admit("validate", rev)[0] == 200
    # Finish the slow requests after the listener has closed: they were in flight, so they
    # must be answered.
    while time.monotonic() - t_term < delay + 0.5 * SLOW:
        time.sleep(0.05)
    statuses = [finish(s, body) for s in slow]
    code = server.proc.wait(timeout=30 * SLOW)
    t_exit = time.monotonic()
    stop.set()
    for w in workers:
        w.join(10)

    assert code == 0
    assert statuses == [200, 200, 200]
    dropped = [d for w in workers for d in w.dropped]
    assert not dropped, f"requests sent and never answered: {dropped}"
    during = [t for w in workers for t in w.ok if t_term + 0.2 < t < t_term + delay - 0.2]
    assert len(during) > 10, "requests were not served during --shutdown-delay"
    # After the delay nothing new is answered, and refusals start only then.
    late = [t for w in workers for t in w.ok if t > t_term + delay + 0.5 * SLOW]
    assert not late, "requests answered long after the listener should have closed"
    refused = [t for w in workers for t in w.refused]
    assert refused and min(refused) > t_term + delay - 0.1
    assert t_exit - t_term < delay + 5 * SLOW
    msgs = [l["msg"] for l in server.log_lines()]
    assert "SIGTERM: draining" in msgs and "stopped" in msgs


def test_drain_timeout_bounds_a_stuck_request(start_server):
    server = start_server(shutdown_delay=0, drain_timeout=2)
    stuck = slow_request(server, b'{"apiVersion": "admission.k8s.io/v1"}')
    time.sleep(0.3)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=30 * SLOW)
    took = time.monotonic() - t0
    assert code == 0
    assert 1.9 < took < 2 + 3 * SLOW, took
    warn = [l for l in server.log_lines() if l["msg"].startswith("drain timeout reached")]
    assert warn and warn[0]["level"] == "warn" and warn[0]["requests"] == "1"
    stuck.close()


def test_sigint_drains_too(start_server):
    server = start_server(shutdown_delay=0, drain_timeout=5)
    assert server.request("GET", "/healthz")[0] == 200
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=30 * SLOW) == 0
    assert "SIGINT: draining" in [l["msg"] for l in server.log_lines()]


def test_idle_keepalive_connection_does_not_hold_the_drain(start_server):
    server = start_server(shutdown_delay=0, drain_timeout=20)
    conn = server.connect()
    rev = review(application([table("orders", "orders-dev")]))
    assert server.admit("validate", rev, conn=conn)[0] == 200  # now idle, kept alive
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30 * SLOW) == 0
    assert time.monotonic() - t0 < 3 * SLOW, "an idle connection held the drain"
    conn.close()

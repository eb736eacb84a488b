# SPDX-License-Identifier: Apache-2.0
"""Graceful drain: on SIGTERM /readyz fails at once, requests keep being answered for
--shutdown-delay, then the listener closes, every request in flight is answered, and the process
exits 0; every request on a connection the server accepted is answered, the last one with
Connection: close; --drain-timeout bounds the wait for a request that never completes and for
idle connections."""

import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import WRAPPER, application, check_envelope, review, table
from test_hostile import closed_by_peer, read_response

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


def test_idle_keepalive_connection_is_answered_then_closed(start_server):
    """An idle keep-alive connection may carry the next review at any moment (the API server
    keeps it 90 s): the drain does not close it under the client. A request on it during the
    drain is answered with Connection: close, and the drain ends once it is closed."""
    server = start_server(shutdown_delay=0, drain_timeout=20)
    s = server.context().wrap_socket(socket.create_connection(("127.0.0.1", server.port)),
                                     server_hostname="localhost")
    rev = review(application([table("orders", "orders-dev")]))
    body = json.dumps(rev).encode()
    request = (b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: "
               b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    s.sendall(request)
    status, headers, _ = read_response(s)
    assert status == 200 and headers.get("connection", "").lower() != "close"  # now idle
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.5 * SLOW)  # the listener is closed; the old drain had closed the idle socket
    assert server.proc.poll() is None, "the drain ended with an idle connection still open"
    s.sendall(request)
    status, headers, answer = read_response(s)
    assert status == 200, "a request on an accepted connection was not answered"
    check_envelope(json.loads(answer), rev)
    assert headers.get("connection", "").lower() == "close"
    assert closed_by_peer(s, 5), "the connection stayed open after its last answer"
    s.close()
    assert server.proc.wait(timeout=30 * SLOW) == 0
    assert time.monotonic() - t0 < 1.5 * SLOW + 3 * SLOW, "the drain outlived its connections"


def test_idle_connection_is_closed_at_the_drain_timeout(start_server):
    server = start_server(shutdown_delay=0, drain_timeout=2)
    conn = server.connect()
    rev = review(application([table("orders", "orders-dev")]))
    assert server.admit("validate", rev, conn=conn)[0] == 200  # now idle, never used again
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30 * SLOW) == 0
    took = time.monotonic() - t0
    assert 1.9 < took < 2 + 3 * SLOW, took
    lines = [l for l in server.log_lines() if l["msg"].startswith("drain timeout reached")]
    assert lines and lines[0]["connections"] == "1" and lines[0]["requests"] == "0", lines
    conn.close()


def lazy_connection(server):
    """A connection whose TLS handshake is done and whose first request has not been sent."""
    return server.context().wrap_socket(socket.create_connection(("127.0.0.1", server.port)),
                                        server_hostname="localhost")


def test_drain_answers_every_request_on_an_accepted_connection(start_server, webhookclient,
                                                               tmp_path):
    """Under load from a client like the API server's, which opens a new connection whenever
    none is idle (and so reconnects at once after each Connection: close), SIGTERM loses no
    request written on a connection the server accepted, including connections accepted just
    before the listener closed and not yet heard from."""
    delay = 2 * SLOW
    server = start_server(shutdown_delay=delay, drain_timeout=20, threads=2, audit=False)
    rev = review(application([table("orders", "orders-prod")]))
    body = json.dumps(rev).encode()
    path = tmp_path / "review.json"
    path.write_bytes(body)
    load = subprocess.Popen([str(webhookclient), "-mode", "load", "-workers", "16",
                             "-url", f"https://127.0.0.1:{server.port}/validate?timeout=10s",
                             "-ca", str(server.ca), "-body", str(path),
                             "-uid", rev["request"]["uid"], "-idle", "90s"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    t_term = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    # Connections accepted in the last moments before the listener closes, whose first
    # request comes only after it has closed (and after any quiet period a drain might wait).
    time.sleep(delay - 1)
    lazy = [lazy_connection(server) for _ in range(6)]
    assert time.monotonic() - t_term < delay, "too slow to open them before the listener closed"
    while time.monotonic() - t_term < delay + 0.8 * SLOW:
        time.sleep(0.05)
    request = (b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: "
               b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    answers = []
    for s in lazy:
        try:
            s.sendall(request)
            answers.append(read_response(s))
        except OSError as e:
            answers.append((0, {}, repr(e).encode()))
        s.close()
    code = server.proc.wait(timeout=60 * SLOW)
    out, _ = load.communicate("", timeout=60)
    result = json.loads(out)
    assert code == 0
    assert [a[0] for a in answers] == [200] * 6, answers
    assert all(a[1].get("connection", "").lower() == "close" for a in answers)
    assert result["ok"] > 50, result
    assert result["failed"] == 0, f"requests written on accepted connections and lost: {result}"
    assert result["refused"] > 0, "the client never saw the listener close"
    assert result["closing"] > 0, "no answer told the client to go"


def validate_request(body):
    return (b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def answer_each(server, raws, body):
    """Sends a review on each socket (raw ones get their TLS handshake first) and returns
    (status, Connection header, parsed answer) for each, or (0, error, None)."""
    answers = []
    for raw in raws:
        try:
            s = raw if hasattr(raw, "version") else server.context().wrap_socket(
                raw, server_hostname="localhost")
            s.sendall(validate_request(body))
            status, headers, answer = read_response(s)
            answers.append((status, headers.get("connection"), json.loads(answer)))
            s.close()
        except (OSError, ValueError) as e:
            answers.append((0, repr(e), None))
    return answers


def listen_queue(port):
    """Connections the kernel completed on the listener of `port` that nobody accepted yet."""
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    return 0


def test_connections_waiting_to_be_accepted_are_answered(start_server):
    """Connections the kernel completed while the server was at --connection-limit wait in the
    listen backlog; the client counts them as open. Closing the listener would reset them: they
    are accepted and answered like the others, each with Connection: close, and so are the
    connections that held the limit."""
    small_rev = review(application([table("orders", "orders-prod")]))
    small = json.dumps(small_rev).encode()
    limit = 4
    taken = 0
    for attempt in range(5):  # until one run catches connections in the backlog
        server = start_server(shutdown_delay=0, drain_timeout=20, threads=2,
                              connection_limit=limit, audit=False)
        held = [lazy_connection(server) for _ in range(limit)]
        waiting = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
        deadline = time.monotonic() + 5 * SLOW
        while listen_queue(server.port) < len(waiting) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert listen_queue(server.port) == len(waiting), "the limit did not hold them back"
        server.proc.send_signal(signal.SIGTERM)
        answers = answer_each(server, waiting + held, small)
        assert server.proc.wait(timeout=30 * SLOW) == 0
        assert [a[:2] for a in answers] == [(200, "close")] * (len(waiting) + limit), answers
        for _, _, body in answers:
            check_envelope(body, small_rev)
        line = [l for l in server.log_lines() if l["msg"].startswith("no longer accepting")][0]
        taken = int(line["taken_from_backlog"])
        if taken > 0:
            break
    assert taken > 0, "no run had connections waiting in the backlog"
    assert taken == len(waiting), line


def test_connections_arriving_while_the_only_worker_is_busy_are_answered(start_server):
    """Connections that arrive while the only worker is busy judging a large review, and whose
    requests come after SIGTERM, are answered like the others, with Connection: close."""
    # One worker, busy judging a review of 60 000 production tables while the others connect.
    app = application([table(f"t{i}", f"t{i}-prod") for i in range(60000)])
    big = json.dumps(review(app)).encode()
    small_rev = review(application([table("orders", "orders-prod")]))
    small = json.dumps(small_rev).encode()
    server = start_server(shutdown_delay=0, drain_timeout=20, threads=1, audit=False)
    busy = lazy_connection(server)
    busy.sendall(validate_request(big))
    time.sleep(0.1)  # the body is read; the worker is judging it
    waiting = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
    server.proc.send_signal(signal.SIGTERM)
    answers = answer_each(server, waiting, small)
    assert read_response(busy)[0] == 200
    busy.close()
    assert server.proc.wait(timeout=30 * SLOW) == 0
    assert [a[:2] for a in answers] == [(200, "close")] * 5, answers
    for _, _, body in answers:
        check_envelope(body, small_rev)


def sigterm_under_load(server):
    """SIGTERM while eight keep-alive clients keep the server's workers busy; returns the exit
    code and the requests sent and never answered."""
    stop = threading.Event()
    workers = [Worker(server, stop) for _ in range(8)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 10 * SLOW
    while not all(w.ok for w in workers):
        assert time.monotonic() < deadline, "load did not start"
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(timeout=30 * SLOW)
    stop.set()
    for w in workers:
        w.join(10)
    return code, [d for w in workers for d in w.dropped]


def test_repeated_sigterms_under_load_always_exit_cleanly(start_server):
    """The listener is the server's own: on SIGTERM its acceptor thread stops, the backlog is
    adopted and the listener closed, while four libmicrohttpd workers are busy with keep-alive
    load. Every time, the process exits 0 and every request is answered. (The drain used to ask
    libmicrohttpd to stop accepting, whose epoll workers could abort the process in that race;
    test_architecture guards that it never does again.)"""
    for _ in range(8):
        server = start_server(shutdown_delay=0, drain_timeout=10, threads=4)
        code, dropped = sigterm_under_load(server)
        assert code == 0, f"the drain ended with {code}"
        assert not dropped, f"requests sent and never answered: {dropped}"


@pytest.fixture(scope="module")
def preempted_listener_removal(tmp_path_factory):
    """The environment that preloads preempt/listener_removal.c into the server."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    lib = tmp_path_factory.mktemp("preempt") / "listener_removal.so"
    src = pathlib.Path(__file__).parent / "preempt" / "listener_removal.c"
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # An ASan build wants its runtime first among the libraries; the shim comes before it.
    asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
    return {"LD_PRELOAD": str(lib), "ASAN_OPTIONS": asan}


def test_the_drain_survives_a_preempted_listener_removal(start_server, preempted_listener_removal):
    """libmicrohttpd 0.9.75 aborted the process ("Failed to remove listen FD from epoll set")
    when the drain's MHD_quiesce_daemon and an epoll worker both removed the listener from the
    worker's epoll set and the drain lost; rare unaided (about one full suite in twelve), every
    request in flight was then dropped. With each such removal paused 2 ms, as a preempted thread
    would, that drain aborted on 15 of 20 SIGTERMs under this load. The server's own acceptor
    leaves libmicrohttpd no listener to remove: every drain exits 0 and answers everything."""
    for _ in range(5):
        server = start_server(shutdown_delay=0, drain_timeout=10, threads=4, audit=False,
                              env=preempted_listener_removal)
        code, dropped = sigterm_under_load(server)
        assert code == 0, f"the drain ended with {code}: " + server.log_path.read_text()[-500:]
        assert not dropped, f"requests sent and never answered: {dropped}"

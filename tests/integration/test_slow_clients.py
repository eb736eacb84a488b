# SPDX-License-Identifier: Apache-2.0
"""Clients that hold the server's connections without finishing a request: slowloris
connections trickling header lines up to the connection limit, a request line trickled byte by
byte on a new or a kept-alive connection, a body that stops after a late piece, clients that
never read their answer. A normal client beside them is answered, the slow ones are closed at the
deadline (--request-timeout, counted as
tableguard_http_rejected_total{reason="request_timeout"}), and idle connections between requests
are left open: the API server reuses them."""

import json
import re
import select
import socket
import ssl
import threading
import time

import pytest
from conftest import WRAPPER, application, review, table

SLACK = 60 if WRAPPER else 1
TIMEOUT = 3  # --request-timeout in these tests
# A close is due between the deadline and the next look (a quarter second) after it; a loaded
# machine adds its own delay.
LATE = 2.0 * SLACK

HEADERS = b"POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\n"


def metric(server, name, **labels):
    text = server.plain("/metrics")[1]
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels
                   else "")
    m = re.search(r"^" + re.escape(want) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def tls_connect(server, timeout=30):
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=timeout * SLACK)
    return server.context().wrap_socket(raw, server_hostname="localhost")


def closed_by_server(s):
    """True when the server has closed the connection (end of stream or reset)."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except ssl.SSLWantReadError:
        return False
    except (ssl.SSLError, OSError):
        return True
    finally:
        s.setblocking(True)


class Slowloris:
    """`n` connections, each sending its request line and then one header line every `gap`
    seconds, never ending its headers. Records when the server closes each one."""

    def __init__(self, server, n, gap=0.5):
        self.server, self.n, self.gap = server, n, gap
        self.conns, self.opened, self.closed = [], {}, {}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def open_some(self, k):
        for _ in range(k):
            t0 = time.monotonic()
            s = tls_connect(self.server)
            s.sendall(HEADERS)
            with self.lock:
                self.opened[s] = t0
                self.conns.append(s)

    def open_all(self, threads=8):
        ts = [threading.Thread(target=self.open_some, args=(self.n // threads,))
              for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def trickle(self):
        line = 0
        next_send = time.monotonic()
        while not self.stop.is_set():
            live = [s for s in self.conns if s not in self.closed]
            if not live:
                return
            readable, _, _ = select.select(live, [], [], 0.05)
            for s in readable:
                if closed_by_server(s):
                    self.closed[s] = time.monotonic()
            if time.monotonic() >= next_send:
                for s in live:
                    if s in self.closed:
                        continue
                    try:
                        s.sendall(b"X-Trickle-%d: %s\r\n" % (line, b"a" * 16))
                    except (ssl.SSLError, OSError):
                        self.closed[s] = time.monotonic()
                line += 1
                next_send += self.gap

    def close(self):
        self.stop.set()
        for s in self.conns:
            s.close()


REVIEW = json.dumps(review(application([table("orders", "orders-prod")])))


def answered(server):
    """A normal client: a new connection, one /validate; True when answered with a decision.
    It retries while the server has no room for its connection yet."""
    deadline = time.monotonic() + (TIMEOUT + 10) * SLACK
    while time.monotonic() < deadline:
        try:
            status, body = server.admit("validate", json.loads(REVIEW))
            return status == 200 and body["response"]["allowed"] is False
        except (ConnectionError, ssl.SSLError, socket.timeout, OSError):
            time.sleep(0.1)
    return False


def test_slowloris_connections_up_to_the_connection_limit_are_closed_at_the_deadline(
        start_server):
    limit = 256
    server = start_server(request_timeout=TIMEOUT, connection_limit=limit, audit=False,
                          log_level="info")
    loris = Slowloris(server, limit)
    loris.open_all()
    t = threading.Thread(target=loris.trickle)
    t.start()
    try:
        t0 = time.monotonic()
        ok = answered(server)
        took = time.monotonic() - t0
        t.join(timeout=(TIMEOUT + 10) * SLACK)
    finally:
        loris.close()
        t.join()
    # The normal client got in once the slow connections were closed: their headers never end,
    # and each header line came well within the idle timeout.
    assert ok
    assert took < TIMEOUT + LATE + 2 * SLACK, took
    assert len(loris.closed) == limit, f"{limit - len(loris.closed)} slowloris connections open"
    held = sorted(loris.closed[s] - loris.opened[s] for s in loris.conns)
    # Each held its connection for the deadline (counted from its TLS handshake), not longer.
    assert held[0] >= TIMEOUT - 0.5, held[:5]
    assert held[-1] < TIMEOUT + LATE + 1.5 * SLACK, held[-5:]
    assert metric(server, "tableguard_http_rejected_total", reason="request_timeout") >= limit
    log = server.log_path.read_text()
    assert "a request not sent within --request-timeout (headers)" in log


def trickle_request_line(s, gap=0.25):
    """Sends the request line a byte every `gap` seconds; returns the seconds until the server
    closed the connection, or None if the whole line went out first."""
    t0 = time.monotonic()
    line = b"POST /validate?timeout=10s&dryRun=false&x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n"
    for b in line:
        try:
            s.sendall(bytes([b]))
        except (ssl.SSLError, OSError):
            return time.monotonic() - t0
        time.sleep(gap)
        if closed_by_server(s):
            return time.monotonic() - t0
    return None


def test_a_request_line_trickled_byte_by_byte_is_closed_at_the_deadline(start_server):
    server = start_server(request_timeout=TIMEOUT, audit=False)
    # On a new connection, its first request line.
    s = tls_connect(server)
    took = trickle_request_line(s)
    s.close()
    assert took is not None and took < TIMEOUT + LATE, took
    # On a kept-alive connection, after an answered request: its next request line.
    conn = server.connect()
    status, _ = server.admit("validate", json.loads(REVIEW), conn=conn)
    assert status == 200
    took = trickle_request_line(conn.sock)
    conn.close()
    assert took is not None and took < TIMEOUT + LATE, took
    assert took >= TIMEOUT - 0.5, took
    assert metric(server, "tableguard_http_rejected_total", reason="request_timeout") >= 2


def test_idle_connections_before_and_between_requests_are_left_open(start_server):
    server = start_server(request_timeout=TIMEOUT, audit=False)
    # A connection whose TLS handshake is done and that has sent nothing yet (a client's spare
    # connection), and one idle after an answered request: neither is a slow request.
    fresh = server.connect()
    fresh.connect()
    kept = server.connect()
    assert server.admit("validate", json.loads(REVIEW), conn=kept)[0] == 200
    time.sleep(3 * TIMEOUT)
    assert not closed_by_server(fresh.sock)
    assert not closed_by_server(kept.sock)
    assert server.admit("validate", json.loads(REVIEW), conn=fresh)[0] == 200
    assert server.admit("validate", json.loads(REVIEW), conn=kept)[0] == 200
    fresh.close()
    kept.close()
    assert metric(server, "tableguard_http_rejected_total", reason="request_timeout") == 0


def stall_after_pieces(s, pieces):
    """Sends a request's headers with the first byte of its body (of 100 announced), one more
    byte at each of the times in `pieces` (seconds after the first), then nothing. Returns the
    seconds from the first byte, and from the last, until the server closed the connection."""
    t0 = time.monotonic()
    s.sendall(HEADERS + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n ")
    last = t0
    for at in pieces:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        s.sendall(b" ")
        last = time.monotonic()
    s.settimeout(30 * SLACK)
    try:
        data = s.recv(1)
    except (ssl.SSLError, ConnectionError):
        data = b""
    now = time.monotonic()
    assert data == b"", data  # no answer: the body never ended
    return now - t0, now - last


# While a body is read, the connection's idle timeout is what is left of --request-timeout, set
# again after every piece: a client that stops after a late piece is closed at the deadline, not
# an idle timeout (the one it had when its request began) after that piece. The last piece comes
# half a second before the deadline: the idle timeout is cut to one second then, where keeping
# the request's first one would hold the connection 4 s more. Once with --request-timeout below
# --connection-timeout (the request line sets it), once above (the idle timeout applies at first,
# a piece every 3 s keeps the request going past it). On a new connection, and on a kept-alive
# one after an answered request (the answer put the idle timeout back).
@pytest.mark.parametrize("flags, pieces", [
    ({"request_timeout": 4}, [3.5]),
    ({"request_timeout": 6, "connection_timeout": 4}, [3.0, 5.5]),
], ids=["request-timeout-first", "connection-timeout-first"])
def test_a_body_that_stops_after_a_late_piece_is_closed_at_the_deadline(start_server, flags,
                                                                         pieces):
    server = start_server(audit=False, **flags)
    deadline = flags["request_timeout"]
    fresh = tls_connect(server)
    kept = server.connect()
    assert server.admit("validate", json.loads(REVIEW), conn=kept)[0] == 200
    took = {}
    ts = [threading.Thread(target=lambda n, s: took.__setitem__(n, stall_after_pieces(s, pieces)),
                           args=(n, s)) for n, s in (("new", fresh), ("kept-alive", kept.sock))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    fresh.close()
    kept.close()
    assert set(took) == {"new", "kept-alive"}, took
    for name, (total, idle) in took.items():
        assert deadline - 0.5 <= total < deadline + LATE, (name, total)
        # About a second after the last piece (the time left, rounded up): 4 s with the first
        # idle timeout kept.
        assert idle < 2.5 * SLACK, (name, idle)
    assert server.admit("validate", json.loads(REVIEW))[0] == 200


def test_a_connection_that_never_completes_its_tls_handshake_is_closed_at_the_deadline(
        start_server):
    server = start_server(request_timeout=TIMEOUT, audit=False)
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30 * SLACK) as s:
        s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and no more
        s.settimeout((TIMEOUT + 10) * SLACK)
        try:
            data = s.recv(1)
        except ConnectionError:
            data = b""
    took = time.monotonic() - t0
    assert data == b""
    assert TIMEOUT - 0.5 <= took < TIMEOUT + LATE, took


def test_clients_that_never_read_their_answers_hold_no_body_budget(start_server):
    # /mutate on 30 000 unprotected production tables: a 4 MB review, a 6 MB patch in answer.
    big = json.dumps(review(application([table(f"orders-{i}", f"orders-{i}-prod")
                                         for i in range(30000)]))).encode()
    cap = len(big) + 4096
    # Room for exactly two such bodies: held until their answers were read, two clients that
    # do not read would stop every other request.
    server = start_server(max_body=cap, body_memory=2 * cap, audit=False, log_level="info")
    stuck = []
    for _ in range(2):
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(30 * SLACK)
        raw.connect(("127.0.0.1", server.port))
        s = server.context().wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
        stuck.append(s)
    deadline = time.monotonic() + 60 * SLACK
    while metric(server, "tableguard_admission_request_duration_seconds_count",
                 webhook="mutate") != 2:
        assert time.monotonic() < deadline, "the two big reviews were not judged"
        time.sleep(0.1)
    # Both answers are queued (each body's share goes back just after its decision is counted)
    # and not read: the requests are still open, their bodies gone.
    deadline = time.monotonic() + 2 * SLACK
    while metric(server, "tableguard_http_request_body_bytes") != 0:
        assert time.monotonic() < deadline, "the unread answers still hold their bodies' budget"
        time.sleep(0.05)
    assert metric(server, "tableguard_admission_requests_in_flight") == 2
    t0 = time.monotonic()
    conn = server.connect()
    for _ in range(20):
        status, body = server.admit("validate", json.loads(REVIEW), conn=conn)
        assert status == 200 and body["response"]["allowed"] is False
    conn.close()
    took = time.monotonic() - t0
    assert took < 5 * SLACK, took
    # Still unread all along: the answers did not slip out into the kernel's buffers.
    assert metric(server, "tableguard_admission_requests_in_flight") == 2
    assert metric(server, "tableguard_http_requests_waiting") == 0
    for s in stuck:
        s.close()

# SPDX-License-Identifier: Apache-2.0
"""Hostile input and the HTTP limits: the corpus under tests/cases/hostile/ replayed against the
real server over TLS, stalled clients, body caps, the connection limit, methods, paths and
oversized headers. After every abuse the server must still answer a good review."""

import gzip
import http.client
import json
import socket
import ssl
import sys
import threading
import time

import jsonpatch
import pytest

from conftest import (ROOT, WRAPPER, application, check_envelope, decode_patch, review, run,
                      table)

CORPUS = ROOT / "tests" / "cases" / "hostile"
# The corpus holds reviews up to 10 002 levels deep, past Python's default recursion limit.
sys.setrecursionlimit(20000)


def load_cases():
    cases = []
    for line in (CORPUS / "expected.tsv").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, webhook, status, allowed, patch, why = line.split("\t")
        path = CORPUS / f"{name}.json"
        body = path.read_bytes() if path.exists() else gzip.decompress(
            (CORPUS / f"{name}.json.gz").read_bytes())
        hooks = ["mutate", "validate"] if webhook == "both" else [webhook]
        cases.append((name, hooks, int(status), allowed, patch, why, body))
    return cases


def request_of(body):
    """The parsed review of a body that is one, else None."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def one_line(text):
    return all(ord(c) >= 0x20 and c != "\x7f" for c in text)


def check_answer(server, name, hook, status, allowed, patch, body):
    t0 = time.monotonic()
    got_status, data = server.request("POST", f"/{hook}?timeout=10s", body)
    took = time.monotonic() - t0
    assert got_status == status, f"{name} /{hook}: {got_status} {data[:300]!r}"
    assert took < (60 if WRAPPER else 10), f"{name} /{hook}: took {took:.1f}s"
    answer = json.loads(data)
    if status != 200:
        assert isinstance(answer.get("error"), str) and answer["error"], (name, answer)
        assert one_line(answer["error"])
        return
    rev = request_of(body)
    check_envelope(answer, rev)
    r = answer["response"]
    assert r["allowed"] is (allowed == "true"), f"{name} /{hook}: {r}"
    ops = decode_patch(answer)
    if hook == "validate":
        assert "patch" not in r and "patchType" not in r
    assert bool(ops) is (patch == "yes"), f"{name} /{hook}: patch {ops[:3]}"
    if not r["allowed"]:
        assert r["status"]["code"] == 403 and one_line(r["status"]["message"])
    for w in r.get("warnings", []):
        assert len(w.encode()) < 120 and one_line(w)
    if ops:
        # The patch must apply as the API server applies it (RFC 6902), and mutating the result
        # again must change nothing (reinvocation).
        patched = jsonpatch.apply_patch(rev["request"]["object"], ops)
        rev["request"]["object"] = patched
        try:
            again_body = json.dumps(rev, allow_nan=False)
        except ValueError:
            return  # a number Python reads as infinity cannot be sent back as JSON
        st, again = server.admit("mutate", json.loads(again_body))
        assert st == 200 and decode_patch(again) == [], f"{name}: not idempotent"


def still_serves(server):
    assert server.proc.poll() is None, "the server died:\n" + server.log_path.read_text()[-3000:]
    rev = review(application([table("orders", "orders-prod")]))
    status, resp = server.admit("mutate", rev)
    assert status == 200
    check_envelope(resp, rev)
    assert decode_patch(resp)


def test_corpus_is_large_enough():
    cases = load_cases()
    assert len(cases) >= 50
    assert {c[2] for c in cases} == {200, 400}
    assert len({c[0] for c in cases}) == len(cases)


def test_hostile_corpus(start_server):
    server = start_server()
    failures = []
    for name, hooks, status, allowed, patch, _why, body in load_cases():
        for hook in hooks:
            try:
                check_answer(server, name, hook, status, allowed, patch, body)
            except AssertionError as e:
                failures.append(str(e))
            assert server.proc.poll() is None, f"the server died on {name}"
    assert not failures, "\n".join(failures)
    still_serves(server)
    _, metrics = server.plain("/metrics")
    assert 'tableguard_http_rejected_total{reason="bad_request"} 0' not in metrics


# ---- raw connections ------------------------------------------------------------------------------

def tls_socket(server, timeout=10):
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return server.context().wrap_socket(raw, server_hostname="localhost")


def read_response(sock):
    """Reads one HTTP response (headers and a Content-Length body) from a socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    want = int(headers.get("content-length", "0"))
    while len(rest) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest


def closed_by_peer(sock, wait):
    """True when the server closes the socket within `wait` seconds (after a TLS alert, say)."""
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if sock.recv(4096) == b"":
                return True
    except socket.timeout:
        return False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True
    return False


def test_stalled_clients_do_not_delay_others(start_server):
    server = start_server(threads=2, connection_timeout=3)
    stalled = []
    # Connections that never start TLS, stop half way through a ClientHello, stop inside the
    # headers, or stop inside the body.
    for _ in range(30):
        stalled.append(socket.create_connection(("127.0.0.1", server.port)))
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        stalled.append(s)
    for _ in range(10):
        s = tls_socket(server)
        s.sendall(b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Ty")
        stalled.append(s)
    for _ in range(10):
        s = tls_socket(server)
        s.sendall(b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/json\r\nContent-Length: 5000\r\n\r\n{\"apiVersion\":")
        stalled.append(s)
    worst = 0.0
    for _ in range(20):
        t0 = time.monotonic()
        still_serves(server)
        worst = max(worst, time.monotonic() - t0)
    assert worst < 2.0, f"a good request took {worst:.2f}s beside stalled clients"
    # --connection-timeout closes every stalled connection.
    time.sleep(3)
    assert all(closed_by_peer(s, 5) for s in stalled)
    for s in stalled:
        s.close()
    still_serves(server)


def test_body_over_cap_with_content_length_is_refused_at_once(start_server):
    server = start_server()
    s = tls_socket(server)
    # Only the headers: the body is never sent, so the answer cannot wait for it.
    # One byte over the default cap (37 MiB: the API server's largest review, an UPDATE with
    # object and oldObject of 3 MiB each, fully escaped, and 1 MiB for the rest).
    s.sendall(b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n" % ((37 << 20) + 1))
    t0 = time.monotonic()
    status, _, body = read_response(s)
    assert status == 413 and time.monotonic() - t0 < 2
    assert "error" in json.loads(body)
    s.close()
    # Exactly at the cap is read in full (and is not a review).
    cap = 1 << 20
    server2 = start_server(max_body=cap)
    status, _ = server2.request("POST", "/validate?timeout=10s", b" " * cap)
    assert status == 400
    # One byte over: refused from the headers alone. The body is not sent, because the server
    # answers and closes before reading it, and a client still writing may see the close
    # before the answer.
    s = tls_socket(server2)
    s.sendall(b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n" % (cap + 1))
    status, _, _ = read_response(s)
    assert status == 413
    s.close()
    _, metrics = server2.plain("/metrics")
    assert 'tableguard_http_rejected_total{reason="body_too_large"} 1' in metrics
    still_serves(server)
    still_serves(server2)


def send_chunked(sock, path, chunks):
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    for c in chunks:
        sock.sendall(b"%x\r\n%s\r\n" % (len(c), c))


def test_chunked_body_over_cap_is_drained_then_refused(start_server):
    cap = 64 * 1024
    server = start_server(max_body=cap)
    s = tls_socket(server)
    send_chunked(s, "/mutate?timeout=10s", [b"x" * 16384] * 8)  # twice the cap
    # Nothing is answered while the body is still arriving.
    s.settimeout(0.5)
    with pytest.raises((socket.timeout, ssl.SSLWantReadError)):
        s.recv(1)
    s.settimeout(10)
    s.sendall(b"0\r\n\r\n")
    status, headers, body = read_response(s)
    assert status == 413, (status, body)
    s.close()
    # A chunked body under the cap is a normal request.
    rev = review(application([table("orders", "orders-prod")]))
    data = json.dumps(rev).encode()
    s = tls_socket(server)
    send_chunked(s, "/mutate?timeout=10s", [data[i:i + 1000] for i in range(0, len(data), 1000)])
    s.sendall(b"0\r\n\r\n")
    status, _, body = read_response(s)
    assert status == 200
    check_envelope(json.loads(body), rev)
    s.close()
    still_serves(server)


def test_large_chunked_bodies_are_read_whole(start_server):
    # A chunked body has no Content-Length: its buffer grows as it arrives, past the size from
    # which bodies get pages of their own (128 KiB), and on through larger ones, keeping every
    # byte; one over the cap is dropped and refused, and the server goes on.
    server = start_server(max_body=1024 * 1024)
    rev = review(application([table(f"t{i}", f"orders-{i}-prod") for i in range(3000)]))
    data = json.dumps(rev).encode()
    assert 300 * 1024 < len(data) < 1024 * 1024, len(data)
    for _ in range(2):  # the same connection again: nothing of the first body is left over
        s = tls_socket(server)
        send_chunked(s, "/mutate?timeout=10s", [data[i:i + 7000] for i in range(0, len(data), 7000)])
        s.sendall(b"0\r\n\r\n")
        status, _, body = read_response(s)
        assert status == 200, (status, body[:200])
        out = json.loads(body)
        check_envelope(out, rev)
        assert out["response"]["allowed"] is True
        # Every component was read: the last one is patched like the first.
        patched = jsonpatch.apply_patch(rev["request"]["object"], decode_patch(out))
        comps = patched["spec"]["components"]
        assert len(comps) == 3000
        assert comps[-1].get("traits") and comps[-1]["traits"] == comps[0]["traits"], comps[-1]
        s.close()
    s = tls_socket(server)
    send_chunked(s, "/mutate?timeout=10s", [b"x" * 65536] * 20)  # 1.25 MiB
    s.sendall(b"0\r\n\r\n")
    status, _, body = read_response(s)
    assert status == 413, (status, body)
    s.close()
    still_serves(server)


def test_connection_limit(start_server):
    limit = 8
    server = start_server(threads=1, connection_limit=limit)
    held = [tls_socket(server) for _ in range(limit)]
    refused = 0
    try:
        extra = tls_socket(server, timeout=5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = read_response(extra)
        refused = status == 0
        extra.close()
    except (ConnectionResetError, ssl.SSLError, OSError):
        refused = True
    assert refused, "a connection over --connection-limit was served"
    held.pop().close()
    time.sleep(0.3)
    still_serves(server)
    for s in held:
        s.close()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
def test_wrong_method_is_405(start_server, method):
    server = start_server()
    status, body = server.request(method, "/mutate?timeout=10s")
    assert status == 405
    if method != "HEAD":
        assert "error" in json.loads(body)
    conn = server.connect()
    conn.request(method, "/validate")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 405 and resp.getheader("Allow") == "POST"
    conn.close()
    # The metrics listener serves GET only, and says so.
    plain = http.client.HTTPConnection("127.0.0.1", server.metrics_port, timeout=10)
    plain.request("POST", "/metrics", body=b"")
    resp = plain.getresponse()
    resp.read()
    assert resp.status == 405 and "GET" in resp.getheader("Allow")
    plain.close()
    still_serves(server)


@pytest.mark.parametrize("path", ["/", "/mutatex", "/mutate/", "/validate/x", "/metrics",
                                  "/MUTATE", "/%00", "/" + "a" * 4000])
def test_unknown_path_is_404(start_server, path):
    server = start_server()
    status, body = server.request("POST", path, b"{}")
    assert status == 404, (path, status)
    assert "error" in json.loads(body)
    still_serves(server)


def refused_status(sock, request):
    """Sends a request the server refuses from its headers: (status, cut), where cut says the
    server answered and closed before the client had sent it all (status 0 if the close also
    lost the answer)."""
    try:
        sock.sendall(request)
        cut = False
    except (ssl.SSLError, OSError):
        cut = True
    try:
        status, _, _ = read_response(sock)
    except (ssl.SSLError, OSError):
        status = 0
    return status, cut


@pytest.mark.parametrize("shape", ["one-huge", "many-small"])
def test_huge_headers_are_refused(start_server, shape):
    server = start_server()
    s = tls_socket(server)
    if shape == "one-huge":
        extra = b"X-Big: " + b"a" * (200 * 1024) + b"\r\n"
    else:
        extra = b"".join(b"X-H%d: v\r\n" % i for i in range(20000))
    head = b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: x\r\n" + extra + \
        b"Content-Length: 2\r\n\r\n{}"
    status, cut = refused_status(s, head)
    assert status == 431 or (cut and status == 0), status
    s.close()
    still_serves(server)


def test_headers_within_the_documented_size_are_served(start_server):
    # docs/operations.md: an 8 KiB header (a long bearer token) beside 64 more lines is served,
    # on a keep-alive connection, request after request; a header block twice the connection's
    # memory is refused with 431 and the connection still serves.
    server = start_server()
    rev = review(application([table("orders", "orders-prod")]))
    data = json.dumps(rev).encode()
    extra = b"Authorization: Bearer " + b"t" * 8192 + b"\r\n" + b"".join(
        b"X-Trace-%02d: %s\r\n" % (i, b"v" * 16) for i in range(64))
    head = (b"POST /validate?timeout=10s HTTP/1.1\r\nHost: tableguard.tableguard.svc:443\r\n"
            b"User-Agent: kube-apiserver-admission\r\nAccept: application/json, */*\r\n"
            b"Content-Type: application/json\r\nAccept-Encoding: gzip\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % len(data))
    assert len(head) > 10 * 1024
    s = tls_socket(server)
    for _ in range(3):
        s.sendall(head + data)
        status, headers, body = read_response(s)
        assert status == 200, (status, body[:200])
        check_envelope(json.loads(body), rev)
        assert headers.get("connection", "").lower() != "close"
    status, cut = refused_status(s, b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                 b"b" * 32768 + b"\r\nContent-Length: 2\r\n\r\n{}")
    assert status == 431 or (cut and status == 0), status
    s.close()
    still_serves(server)


# ---- the body budget: bodies held at once stay under --body-memory --------------------------

def metric(server, name):
    _, text = server.plain("/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def big_review(target):
    """A valid review of about `target` bytes: many components, none with the trait."""
    n = max(1, target // 110)
    rv = review(application([table(f"t{i}", f"tbl-{i}-prod") for i in range(n)]))
    return rv, json.dumps(rv).encode()


def send_head(server, body, upto):
    s = tls_socket(server)
    s.sendall(b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:upto])
    return s


def wait_metric(server, name, want, timeout=10):
    deadline = time.monotonic() + timeout
    while metric(server, name) != want:
        assert time.monotonic() < deadline, f"{name} never reached {want}: {metric(server, name)}"
        time.sleep(0.05)


def check_mutated(rv, status, body):
    assert status == 200, body
    answer = json.loads(body)
    check_envelope(answer, rv)
    ops = decode_patch(answer)
    assert len(ops) == len(rv["request"]["object"]["spec"]["components"])


def test_body_budget_makes_requests_wait_in_turn(start_server):
    cap = 1 << 20
    rv, body = big_review(750_000)
    assert 600_000 < len(body) <= cap
    budget = 2 * len(body) + 1000  # room for two bodies, not three
    server = start_server(max_body=cap, body_memory=budget)
    assert metric(server, "tableguard_http_request_body_limit_bytes") == budget
    # Two bodies fit in the budget: both are read while half sent. The third waits before its
    # body is read, and so does a fourth whose client then gives up.
    a, b = send_head(server, body, len(body) // 2), send_head(server, body, len(body) // 2)
    wait_metric(server, "tableguard_http_request_body_bytes", 2 * len(body))
    c = send_head(server, body, 0)
    wait_metric(server, "tableguard_http_requests_waiting", 1)
    gone = send_head(server, body, 0)
    wait_metric(server, "tableguard_http_requests_waiting", 2)
    gone.close()  # a waiting client that gives up keeps its turn (its socket is not watched)
    assert metric(server, "tableguard_http_request_body_bytes") == 2 * len(body)
    # Requests without a body to hold are not held up by the budget.
    assert server.request("GET", "/healthz")[0] == 200
    # A chunked body does not wait (after a wait its end could not be told): with no room for
    # the cap it is refused at once.
    s = tls_socket(server)
    s.sendall(b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
              b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    status, _, answer = read_response(s)
    assert status == 503 and "--body-memory" in json.loads(answer)["error"]
    s.close()
    assert 'tableguard_http_rejected_total{reason="body_memory"} 1' in server.plain("/metrics")[1]
    # The first finishes: the third, first in line, takes its room; its body is read only now.
    a.sendall(body[len(body) // 2:])
    status, _, answer = read_response(a)
    check_mutated(rv, status, answer)
    wait_metric(server, "tableguard_http_requests_waiting", 1)
    assert metric(server, "tableguard_http_request_body_bytes") == 2 * len(body)
    time.sleep(0.5)  # no answer comes before its body
    c.sendall(body)
    status, _, answer = read_response(c)
    check_mutated(rv, status, answer)
    # The second finishes: the abandoned one is admitted, found closed, and gives its room back.
    b.sendall(body[len(body) // 2:])
    status, _, answer = read_response(b)
    check_mutated(rv, status, answer)
    for s in (a, b, c):
        s.close()
    wait_metric(server, "tableguard_http_requests_waiting", 0)
    wait_metric(server, "tableguard_http_request_body_bytes", 0)
    still_serves(server)


def test_body_budget_under_concurrent_load(start_server):
    cap = 1 << 20
    server = start_server(max_body=cap, body_memory=2 * cap, audit=False)
    rv, body = big_review(500_000)
    results = []

    def one():
        s = tls_socket(server, timeout=60)
        s.sendall(b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        results.append(read_response(s))
        s.close()

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 12
    for status, _, answer in results:
        check_mutated(rv, status, answer)
    assert metric(server, "tableguard_http_requests_waiting") == 0
    assert metric(server, "tableguard_http_request_body_bytes") == 0


def test_body_memory_below_the_cap_is_refused():
    p = run("serve", "--policy", "x", "--tls-cert", "x", "--tls-key", "x", "--max-body", "2000",
            "--body-memory", "1000")
    assert p.returncode == 2
    assert "--body-memory (1000) must be at least --max-body (2000)" in p.stderr


def test_body_memory_left_at_its_default_follows_a_larger_cap(start_server):
    # Two bodies at the cap, so one slow client at the cap never holds the whole budget.
    server = start_server(max_body=64 << 20)
    assert metric(server, "tableguard_http_request_body_limit_bytes") == 2 * (64 << 20)
    assert start_server().plain("/metrics")[1].count(
        "tableguard_http_request_body_limit_bytes 77594624\n") == 1

# SPDX-License-Identifier: Apache-2.0
"""Answers on the wire when the client cannot take them at once: the server's writes meet a
full socket (partial writes, EAGAIN) and every answer must still arrive whole, byte for byte
the answer a client that reads at once gets.

How the socket fills, from the client alone (no hook in the server): before it connects the
client sets a 4 KiB receive buffer, so its TCP window stays small, and a 536-byte maximum
segment size, which the server's kernel sizes its send buffer from (about 170 KiB instead of
4 MiB over loopback's 64 KiB segments). It then reads nothing for a second, so the server's
send buffer fills behind it and its writes come back short and then with EAGAIN; then the
client reads a little at a time."""

import json
import select
import socket
import ssl
import time

from conftest import application, decode_patch, review, table

RCVBUF = 4096


def small_window_socket(server):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", server.port))
    return server.context().wrap_socket(raw, server_hostname="localhost")


def post(path, body):
    return (b"POST %s HTTP/1.1\r\nHost: tableguard.tableguard.svc:443\r\n"
            b"User-Agent: kube-apiserver-admission\r\nAccept: application/json, */*\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
                path.encode(), len(body))) + body


def take_answer(buf):
    """(status, body, rest) for the first whole answer in buf, or None while it is incomplete."""
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (l.partition(":") for l in lines[1:])
                  if k.strip().lower() == "content-length")
    if len(rest) < length:
        return None
    return int(lines[0].split()[1]), rest[:length], rest[length:]


def reference(server, path, body, conn=None):
    """The answer a client that reads at once gets for the same request."""
    status, data = server.request("POST", path, body, conn=conn)
    assert status == 200
    return data


def test_a_large_answer_to_a_client_that_does_not_read_arrives_whole(start_server):
    # 1000 components without the protection trait: /mutate answers with a patch of 1000
    # operations, far more than the client's window and the server's send buffer hold.
    server = start_server()
    rev = review(application([table(f"t{i}", f"t{i}-prod") for i in range(1000)]))
    body = json.dumps(rev).encode()
    want = reference(server, "/mutate?timeout=10s", body)
    assert len(want) > 32 * RCVBUF
    assert len(decode_patch(json.loads(want))) >= 1000
    s = small_window_socket(server)
    for _ in range(2):  # twice on one connection: the first answer leaves nothing behind
        s.sendall(post("/mutate?timeout=10s", body))
        time.sleep(1.0)
        buf, got = b"", None
        deadline = time.monotonic() + 60
        while got is None:
            assert time.monotonic() < deadline, f"answer incomplete after {len(buf)} bytes"
            chunk = s.recv(1024 if len(buf) < 64 * 1024 else 65536)
            assert chunk, f"connection closed after {len(buf)} bytes"
            buf += chunk
            got = take_answer(buf)
        status, data, rest = got
        assert status == 200 and rest == b""
        assert data == want
    s.close()


def test_pipelined_answers_to_a_client_that_does_not_read_all_arrive(start_server):
    # Small answers: 800 requests sent back to back while nothing is read. The answers fill
    # the socket one after another, so the server meets EAGAIN between and inside them; each
    # must arrive whole, in order, once the client reads.
    server = start_server()
    # One component: the answer's header record is about a third of its bytes, so the socket
    # fills inside a header as well as inside a body.
    revs = [review(application([table("orders", "orders-prod")])) for _ in range(800)]
    bodies = [json.dumps(r).encode() for r in revs]
    conn = server.connect()
    wants = [reference(server, "/mutate?timeout=10s", b, conn) for b in bodies]
    conn.close()
    out = b"".join(post("/mutate?timeout=10s", b) for b in bodies)
    assert all(len(w) < 8192 for w in wants)
    assert sum(map(len, wants)) > 300 * 1024, sum(map(len, wants))
    s = small_window_socket(server)
    s.setblocking(False)
    sent, buf, got = 0, b"", []
    read_from = time.monotonic() + 1.0  # nothing is read for a second
    deadline = time.monotonic() + 60
    while len(got) < len(wants):
        assert time.monotonic() < deadline, f"{len(got)} answers of {len(wants)} arrived"
        reading = time.monotonic() >= read_from
        r, w, _ = select.select([s] if reading else [], [s] if sent < len(out) else [], [],
                                0.05)
        if w:
            try:
                sent += s.send(out[sent:sent + 16384])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        if reading and (r or s.pending()):
            try:
                chunk = s.recv(2048)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            assert chunk, f"connection closed after {len(got)} answers"
            buf += chunk
            time.sleep(0.001)  # slowly: the server's writes meet a full socket again and again
            while (a := take_answer(buf)) is not None:
                status, data, buf = a
                assert status == 200
                got.append(data)
    assert got == wants
    s.close()


def test_answers_without_a_body_leave_at_once(start_server):
    # HEAD answers carry no body: their header must not wait for one. Each is answered within
    # the client's timeout, and the keep-alive connection then serves a review.
    server = start_server()
    conn = server.connect()
    conn.sock = None
    conn.timeout = 5
    for path in ("/healthz", "/readyz", "/mutate?timeout=10s", "/nowhere"):
        conn.request("HEAD", path)
        resp = conn.getresponse()
        assert resp.read() == b""
        assert resp.status in (404, 405), (path, resp.status)
    rev = review(application([table("orders", "orders-prod")]))
    status, body = server.request("POST", "/mutate?timeout=10s", rev, conn=conn)
    assert status == 200
    assert decode_patch(json.loads(body))
    conn.close()

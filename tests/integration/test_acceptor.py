# SPDX-License-Identifier: Apache-2.0
"""The server accepts its HTTPS connections itself: --connection-limit holds exactly, counted
from accept to close, so a burst never has more connections accepted than the limit; the rest
wait in the listen backlog and are served as slots free. An accept that fails for want of
file descriptors neither spins nor stops the server: the connection waits in the backlog until
descriptors free."""

import json
import os
import resource
import socket
import threading
import time

from conftest import WRAPPER, application, check_envelope, review, table
from test_drain import validate_request
from test_hostile import read_response

SLOW = 5 if WRAPPER else 1


def tcp_table(port):
    """The kernel's view of the listener on `port`: (connections accepted by a process, i.e.
    holding a socket inode; connections the kernel completed and nobody accepted yet, the
    listener's accept queue). The file is not read atomically: a socket can be listed twice,
    and one closed early in the read beside one accepted late in it."""
    accepted, queued = set(), 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, queues, inode = fields[1], fields[3], fields[4], fields[9]
            if int(local.split(":")[1], 16) != port:
                continue
            if state == "0A":  # LISTEN: rx_queue is the accept queue's length
                queued = int(queues.split(":")[1], 16)
            elif state == "01" and inode != "0":
                accepted.add(inode)
    return len(accepted), queued


def held_sockets(port):
    """Connections on `port` whose socket a process still holds (any state but LISTEN)."""
    held = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if int(local.split(":")[1], 16) == port and state != "0A" and inode != "0":
                held.add(inode)
    return len(held)


def test_a_burst_over_the_limit_never_has_more_than_the_limit_accepted(start_server):
    """Forty clients connect at once under a limit of 8, each keeping its connection a while
    after its answer. A client's TLS handshake completes only once the server has accepted its
    connection, and the server holds that connection at least until the client closes it, so
    no more than 8 clients may ever be between the two at once. (The kernel's socket table
    cannot show this: /proc/net/tcp is not read atomically.)"""
    limit, clients = 8, 40
    server = start_server(threads=2, connection_limit=limit, audit=False)
    rev = review(application([table("orders", "orders-prod")]))
    req = validate_request(json.dumps(rev).encode())
    queue, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            queue.append(tcp_table(server.port)[1])
            time.sleep(0.002)

    results, spans = [None] * clients, [None] * clients

    def client(i):
        try:
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=60 * SLOW)
            s = server.context().wrap_socket(raw, server_hostname="localhost")
            accepted = time.monotonic()
            s.sendall(req)
            status, _, body = read_response(s)
            check_envelope(json.loads(body), rev)
            time.sleep(0.2)  # keeps its slot a while after its answer, like an idle client
            spans[i] = (accepted, time.monotonic())
            s.close()
            results[i] = status
        except (OSError, ValueError, AssertionError) as e:
            results[i] = repr(e)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120 * SLOW)
    stop.set()
    watcher.join()
    assert results == [200] * clients, results
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = at_once = 0
    for _, step in events:
        at_once += step
        most = max(most, at_once)
    assert most <= limit, f"{most} connections accepted at once over --connection-limit {limit}"
    assert most == limit, f"the burst never filled the limit ({most})"
    assert max(queue) > 0, "no connection waited in the listen backlog"
    assert server.proc.poll() is None


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors_connections_wait_and_are_served_later(start_server):
    server = start_server(threads=2, audit=False, log_level="info", reload_interval=3600)
    rev = review(application([table("orders", "orders-prod")]))
    req = validate_request(json.dumps(rev).encode())
    pid = server.proc.pid
    before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    # The readiness check's connection to the metrics listener is closed by the client; until the
    # server has closed its side too, that descriptor would be counted as in use below and freed
    # during the starved seconds, letting one more connection in and starting a second episode.
    deadline = time.monotonic() + 10 * SLOW
    while held_sockets(server.metrics_port) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held_sockets(server.metrics_port) == 0, "the readiness check's connection stayed open"
    # A new descriptor takes the lowest free number, and fails with EMFILE from the soft limit
    # on: room for two more. (Under valgrind its own descriptors lie far above.)
    in_use = {int(n) for n in os.listdir(f"/proc/{pid}/fd")}
    lowest_free = min(set(range(len(in_use) + 1)) - in_use)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free + 2, before[1]))
    try:
        conns = [socket.create_connection(("127.0.0.1", server.port), timeout=30 * SLOW)
                 for _ in range(6)]
        time.sleep(0.5 * SLOW)
        accepted, queued = tcp_table(server.port)
        assert queued > 0 and accepted + queued == 6, (accepted, queued)
        # The listener stays readable while accept fails: the server must not spin on it.
        t0, c0 = time.monotonic(), cpu_seconds(pid)
        time.sleep(1)
        used = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        assert used < 0.5, f"the server spun at {used:.0%} of a CPU while out of descriptors"
        assert server.proc.poll() is None, "the server died out of descriptors"
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, before)
    # Descriptors again: the connections that waited are accepted and answered.
    for raw in conns:
        s = server.context().wrap_socket(raw, server_hostname="localhost")
        s.sendall(req)
        status, _, body = read_response(s)
        assert status == 200
        check_envelope(json.loads(body), rev)
        s.close()
    msgs = [l["msg"] for l in server.log_lines()]
    starved = "cannot accept connections; they wait in the listen backlog meanwhile"
    assert msgs.count(starved) == 1, "one warning per episode, not one per attempt"
    assert "accepting connections again" in msgs


def unread(port, client_port):
    """Bytes sent on the connection from `client_port` to the listener on `port` that the
    server has not read yet: in flight (the client's send queue) or in its receive queue."""
    left = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
            tx, rx = (int(q, 16) for q in fields[4].split(":"))
            if (local, remote) == (client_port, port):
                left += tx
            elif (local, remote) == (port, client_port):
                left += rx
    return left


def test_a_new_connection_is_not_left_behind_a_worker_busy_judging(start_server):
    """With two workers, one judging a large review, connections that arrive meanwhile are
    answered by the idle one, not queued behind the judgement (libmicrohttpd's own listener
    sat in every worker's epoll set, so an idle worker took them; handed over by the acceptor,
    a socket went to the worker of its number, busy or not: half of them waited)."""
    app = application([table(f"t{i}", f"t{i}-prod") for i in range(150000)])
    big = json.dumps(review(app)).encode()
    rev = review(application([table("orders", "orders-prod")]))
    req = validate_request(json.dumps(rev).encode())
    server = start_server(threads=2, audit=False, log_level="info")
    raw = socket.create_connection(("127.0.0.1", server.port))
    busy = server.context().wrap_socket(raw, server_hostname="localhost")
    busy.sendall(validate_request(big))
    # Once the server has read the whole body, one worker is judging it (for most of a second).
    deadline = time.monotonic() + 30 * SLOW
    while unread(server.port, busy.getsockname()[1]) != 0:
        assert time.monotonic() < deadline, "the server did not read the review"
        time.sleep(0.005)
    raws = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(6)]
    answered = [None] * len(raws)

    def client(i):
        s = server.context().wrap_socket(raws[i], server_hostname="localhost")
        s.sendall(req)
        status, _, body = read_response(s)
        check_envelope(json.loads(body), rev)
        answered[i] = (status, time.monotonic())
        s.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(raws))]
    for t in threads:
        t.start()
    assert read_response(busy)[0] == 200
    big_done = time.monotonic()
    busy.close()
    for t in threads:
        t.join(60 * SLOW)
    assert [a and a[0] for a in answered] == [200] * len(raws), answered
    assert any(at < big_done for _, at in answered), "the judgement ended before any answer"
    late = [i for i, (_, at) in enumerate(answered) if at >= big_done]
    assert not late, f"connections {late} waited for the other worker's judgement"

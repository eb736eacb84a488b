# SPDX-License-Identifier: Apache-2.0
"""The audit log of the real server: every answered decision is recorded and verifiable, through
SIGKILL under load, rotation under load, a full device (closed and open) and stdout. Each log is
checked twice: by `tableguard audit verify` and by the auditor's Python check from docs/audit.md."""

import glob
import http.client
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import ROOT, application, protection, review, run, table

GVR = {"group": "core.oam.dev", "version": "v1beta1", "resource": "applications"}


def auditor_check():
    """The independent check, taken verbatim from docs/audit.md so the doc cannot rot."""
    doc = (ROOT / "docs" / "audit.md").read_text()
    code = re.search(r"```python\n(# audit_check\.py.*?)```", doc, re.S).group(1)
    scope = {"__name__": "audit_check"}
    exec(compile(code, "docs/audit.md", "exec"), scope)
    return scope["check"]


def log_files(path):
    """FILE.N .. FILE.1 FILE: the order the Python check wants."""
    path = str(path)
    rotated = glob.glob(path + ".*")
    rotated.sort(key=lambda p: -int(p.rsplit(".", 1)[1]))
    return rotated + ([path] if os.path.exists(path) else [])


def records(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out += [json.loads(line) for line in f]
    return out


def verify_both(paths, *flags, key=None):
    """Both verifiers must accept the files; returns the records."""
    paths = [str(p) for p in paths]
    args = ["audit", "verify", *flags] + (["--hmac-key", str(key)] if key else [])
    proc = run(*args, *random.sample(paths, len(paths)))  # the CLI sorts by seq itself
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "chain OK" in proc.stdout
    keybytes = open(key, "rb").read().rstrip(b"\r\n") if key else None
    seq, _ = auditor_check()(paths, keybytes)
    recs = records(paths)
    assert seq == recs[-1]["seq"]
    return recs


def prod_review(uid, deletion_protection=True, traits=True, dry_run=False):
    """A production table whose protection trait sets deletionProtection (or has no trait)."""
    tr = [protection(deletionProtection=deletion_protection)] if traits else None
    app = application([table("orders-table", "orders-prod", traits=tr)])
    return review(app, uid=uid, dry_run=dry_run, groups=("team-shop",))


def status_of(server, webhook, rev, conn=None):
    return server.request("POST", f"/{webhook}?timeout=10s", rev, conn=conn)[0]


def metric(server, name):
    _, body = server.plain("/metrics")
    return float(re.search(r"^%s (\S+)$" % re.escape(name), body, re.M).group(1))


def load(server, seconds=None, per_thread=None, threads=6):
    """Concurrent validate requests on keep-alive connections; returns the uids answered 200
    with their own uid (what the API server would accept), until stopped or the count is done."""
    answered, lock, stop = [], threading.Lock(), threading.Event()

    def worker(t):
        conn, i = server.connect(), 0
        while not stop.is_set() and (per_thread is None or i < per_thread):
            uid = "load-%d-%d" % (t, i)
            i += 1
            try:
                status, body = server.admit("validate", prod_review(uid, i % 2 == 0), conn=conn)
            except (OSError, http.client.HTTPException, ValueError):
                return  # the server died: whatever was not answered does not count
            if status == 200 and body["response"]["uid"] == uid:
                with lock:
                    answered.append(uid)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    if seconds is not None:
        time.sleep(seconds)
        return answered, stop, workers
    for w in workers:
        w.join()
    return answered


def test_every_decision_is_recorded_and_verifies(start_server):
    srv = start_server(audit_sync="always")
    conn = srv.connect()
    assert status_of(srv, "validate", prod_review("deny-1", False), conn) == 200
    assert status_of(srv, "mutate", prod_review("patch-1", traits=False), conn) == 200
    assert status_of(srv, "validate", prod_review("dry-1", dry_run=True), conn) == 200
    assert status_of(srv, "validate", b"not json", conn) == 400
    assert metric(srv, "tableguard_audit_records_total") == 3
    assert srv.stop() == 0
    recs = verify_both([srv.audit_path], "--sealed")
    assert [r["event"] for r in recs] == ["start", "decision", "decision", "decision", "stop"]
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    deny, patch, dry = recs[1:4]
    assert (deny["uid"], deny["decision"], deny["code"]) == ("deny-1", "deny", 403)
    assert deny["rules"][0]["name"] == "prod-deletion-protection"
    assert deny["rules"][0]["table"] == "orders-prod"
    assert deny["rules"][0]["component"] == "orders-table"
    assert deny["user"] == {"username": "alice@example.com", "groups": ["team-shop"]}
    assert deny["resource"] == dict(GVR, namespace="shop", name="orders")
    assert deny["webhook"] == "validate" and deny["operation"] == "CREATE"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", deny["time"])
    assert (patch["webhook"], patch["decision"]) == ("mutate", "patch")
    assert patch["patch"][0]["path"] == "/spec/components/0/traits"
    assert dry["dryRun"] is True and deny["dryRun"] is False
    assert deny["policy"]["name"] == "default" and len(deny["policy"]["sha256"]) == 64
    assert recs[0]["chain"] == "sha256" and recs[0]["after"] == "new"


def test_hmac_chain_needs_the_key(start_server, tmp_path):
    key = tmp_path / "key"
    key.write_bytes(os.urandom(16).hex().encode() + b"\n")
    srv = start_server(audit_hmac_key=key)
    conn = srv.connect()
    for i in range(5):
        assert status_of(srv, "validate", prod_review("hmac-%d" % i), conn) == 200
    assert srv.stop() == 0
    recs = verify_both([srv.audit_path], "--sealed", key=key)
    assert recs[0]["chain"] == "hmac-sha256"
    proc = run("audit", "verify", str(srv.audit_path))
    assert proc.returncode == 1
    assert ".log:1: hash mismatch" in proc.stdout and "--hmac-key" in proc.stdout
    with pytest.raises(ValueError):
        auditor_check()([str(srv.audit_path)], None)


@pytest.mark.parametrize("sync", ["none", "batch", "always"])
def test_sigkill_under_load_loses_no_answered_record(start_server, tmp_path, sync):
    log = tmp_path / "kept.log"
    srv = start_server(audit=False, audit_log=log, audit_sync=sync)
    answered, stop, workers = load(srv, seconds=1.5)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=10)
    stop.set()
    for w in workers:
        w.join()
    assert len(answered) > 50
    recs = verify_both([log])
    logged = {r.get("uid") for r in recs}
    lost = [u for u in answered if u not in logged]
    assert not lost, "%d answered decisions missing from the log, e.g. %s" % (len(lost), lost[:3])
    assert recs[-1]["event"] != "stop"  # it really died

    # The next start continues the chain and says the previous run ended uncleanly.
    srv = start_server(audit=False, audit_log=log, audit_sync=sync)
    assert status_of(srv, "validate", prod_review("after-kill")) == 200
    assert srv.stop() == 0
    recs2 = verify_both([log], "--sealed")
    start = recs2[len(recs)]
    assert start["event"] == "start" and start["after"] == "unclean"
    assert start["seq"] == recs[-1]["seq"] + 1


@pytest.mark.parametrize("threads", [1, 2])
def test_always_concurrent_answers_each_after_its_record(start_server, threads):
    """--audit-sync always holds each answer until the group its record was written with is
    fsynced: every answer has its record, once, in one verifiable chain."""
    srv = start_server(audit_sync="always", threads=threads)
    answered = load(srv, per_thread=40, threads=8)
    assert len(answered) == 8 * 40
    assert metric(srv, "tableguard_audit_records_total") == 8 * 40
    assert srv.stop() == 0
    recs = verify_both([srv.audit_path], "--sealed")
    assert sorted(r["uid"] for r in recs if r["event"] == "decision") == sorted(answered)


def test_always_write_failure_fails_every_held_request(start_server):
    srv = start_server(audit=False, audit_log="/dev/full", audit_sync="always")
    statuses, lock = [], threading.Lock()

    def client(t):
        conn = srv.connect()
        for i in range(5):
            status = status_of(srv, "validate", prod_review("full-%d-%d" % (t, i)), conn)
            with lock:
                statuses.append(status)

    clients = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    assert statuses == [500] * 40
    assert metric(srv, "tableguard_audit_write_errors_total") >= 40
    assert metric(srv, "tableguard_audit_records_total") == 0
    assert srv.stop() == 0
    assert "audit log write failed" in srv.log_path.read_text()


def test_always_sigterm_under_load_answers_every_held_request(start_server, tmp_path):
    """The drain waits for the answers held for their records: none is dropped, each has its
    record, and the log closes with a stop record after them."""
    log = tmp_path / "drained.log"
    srv = start_server(audit=False, audit_log=log, audit_sync="always", threads=2,
                       drain_timeout=20)
    sent, answered, dropped, lock, stop = [], [], [], threading.Lock(), threading.Event()

    def worker(t):
        conn, i = None, 0
        while not stop.is_set():
            if conn is None:
                conn = srv.connect()
                try:
                    conn.connect()
                except OSError:
                    return  # not accepted: nothing sent
            uid = "drain-%d-%d" % (t, i)
            i += 1
            with lock:
                sent.append(uid)
            try:
                status, body = srv.admit("validate", prod_review(uid), conn=conn)
            except (OSError, http.client.HTTPException, ValueError) as e:
                with lock:
                    dropped.append((uid, repr(e)))
                return
            assert status == 200 and body["response"]["uid"] == uid
            with lock:
                answered.append(uid)
            if conn.sock is None:  # the answer said Connection: close
                conn = None

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for w in workers:
        w.start()
    time.sleep(1)
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=30) == 0
    stop.set()
    for w in workers:
        w.join(10)
    assert len(answered) > 50
    assert not dropped, "requests sent and never answered: %s" % dropped[:3]
    recs = verify_both([log], "--sealed")
    assert sorted(r["uid"] for r in recs if r["event"] == "decision") == sorted(answered)


def post_and_go(srv, uid, reset):
    """Sends a whole review and goes away without reading the answer: with reset, the close
    sends an RST."""
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    if reset:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn = srv.context().wrap_socket(raw, server_hostname="127.0.0.1")
    body = json.dumps(prod_review(uid)).encode()
    conn.sendall(b"POST /validate?timeout=10s HTTP/1.1\r\nHost: tableguard\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                 + body)
    conn.close()


def test_always_clients_gone_while_held_leave_nothing_held(start_server):
    """Clients that send a review and close (or reset) while its answer is held for its record:
    each held answer is let go when its connection ends, the other connections of its worker
    thread are still resumed, and the server keeps answering, then stops at once."""
    srv = start_server(audit_sync="always", threads=2)
    stop, gone = threading.Event(), []

    def leaver(t):
        i = 0
        while not stop.is_set():
            uid = "gone-%d-%d" % (t, i)
            post_and_go(srv, uid, reset=i % 2 == 0)
            gone.append(uid)
            i += 1

    leavers = [threading.Thread(target=leaver, args=(t,)) for t in range(6)]
    for t in leavers:
        t.start()
    answered, stop_load, workers = load(srv, seconds=2, threads=4)
    stop.set()
    stop_load.set()
    for t in leavers + workers:
        t.join()
    assert len(gone) > 20 and len(answered) > 20
    status, body = srv.admit("validate", prod_review("after-the-leavers"))
    assert status == 200 and body["response"]["uid"] == "after-the-leavers"
    deadline = time.time() + 10
    while metric(srv, "tableguard_admission_requests_in_flight") != 0 and time.time() < deadline:
        time.sleep(0.05)
    assert metric(srv, "tableguard_admission_requests_in_flight") == 0
    assert srv.stop() == 0
    recs = verify_both([srv.audit_path], "--sealed")
    uids = [r["uid"] for r in recs if r["event"] == "decision"]
    assert len(uids) == len(set(uids))
    assert set(answered) | {"after-the-leavers"} <= set(uids)
    assert set(uids) <= set(answered) | set(gone) | {"after-the-leavers"}


def test_always_body_memory_wait_then_held(start_server):
    """A request that waited (suspended) for room under --body-memory is then held
    (suspended again) for its record: each is answered after its record, once."""
    size = len(json.dumps(prod_review("load-0-00")))
    srv = start_server(audit_sync="always", threads=2, max_body=size + 200,
                       body_memory=2 * size + 400)
    answered = load(srv, per_thread=20, threads=8)
    assert len(answered) == 8 * 20
    assert srv.stop() == 0
    assert "request waits for room under --body-memory" in srv.log_path.read_text()
    recs = verify_both([srv.audit_path], "--sealed")
    assert sorted(r["uid"] for r in recs if r["event"] == "decision") == sorted(answered)


@pytest.mark.parametrize("sync", ["batch", "always"])
def test_rename_and_sighup_under_load_keep_every_record(start_server, tmp_path, sync):
    """A log-rotation tool renames the log and sends SIGHUP while requests are answered: every
    answered decision is in one of the files, once, and the chain runs through them."""
    log = tmp_path / "hup.log"
    srv = start_server(audit=False, audit_log=log, audit_sync=sync, threads=2)
    answered, stop, workers = load(srv, seconds=0.5, threads=8)
    moved = []
    for i in range(3):
        moved.append(tmp_path / ("hup.log.%d" % i))
        os.rename(log, moved[-1])
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.4)
    stop.set()
    for w in workers:
        w.join()
    assert srv.stop() == 0
    # Each file verifies alone, and the set as one chain across the reopens.
    for f in moved + [log]:
        proc = run("audit", "verify", str(f))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert verify_both(moved + [log], "--sealed") == records(moved + [log])
    proc = run("audit", "report", *map(str, moved + [log]))
    assert proc.returncode == 0 and "chain OK: seq 1.." in proc.stderr, proc.stderr
    recs = records(moved + [log])
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert all(b["prev"] == a["hash"] for a, b in zip(recs, recs[1:]))
    assert recs[-1]["event"] == "stop"
    assert sorted(r["uid"] for r in recs if r["event"] == "decision") == sorted(answered)
    assert len(answered) > 50
    reopened = [r for r in recs if r["event"] == "start" and r["after"] == "reopen"]
    # Each rename is noticed before the next record, and each SIGHUP reopens again.
    assert 3 <= len(reopened) <= 6


def reopened_set(start_server, tmp_path):
    """A log split by the server itself: renamed + SIGHUP (a rotation tool), then deleted while
    another name still holds it (the writer notices the file is gone before the next record),
    then rotated by size. Returns the files oldest first and the uids answered."""
    log = tmp_path / "set.log"
    srv = start_server(audit=False, audit_log=log, audit_sync="always", audit_max_size=6000,
                       audit_max_files=9)
    conn, answered = srv.connect(), []

    def send(n, tag):
        for i in range(n):
            uid = "%s-%d" % (tag, i)
            assert status_of(srv, "validate", prod_review(uid), conn) == 200
            answered.append(uid)

    send(3, "first")
    renamed = tmp_path / "set.renamed"
    os.rename(log, renamed)
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)  # the reopen may come from the rename or the signal: both are "reopen"
    send(3, "hup")
    deleted = tmp_path / "set.deleted"
    os.link(log, deleted)
    os.unlink(log)
    send(8, "gone")  # enough to rotate the new file by size as well
    assert srv.stop() == 0
    files = [renamed, deleted] + log_files(log)
    recs = records(files)
    starts = [r["after"] for r in recs if r["event"] == "start"]
    assert starts[0] == "new" and starts.count("reopen") >= 2, starts
    assert [r["event"] for r in recs].count("rotate") >= 1 and len(files) >= 4, files
    assert open(renamed).readlines()[-1].find('"event":"rotate"') < 0  # ends without one
    return files, answered


def test_verify_and_report_accept_a_log_split_by_reopens(start_server, tmp_path):
    files, answered = reopened_set(start_server, tmp_path)
    recs = verify_both(files, "--sealed", "--checkpoint", "1")
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert sorted(r["uid"] for r in recs if r["event"] == "decision") == sorted(answered)
    proc = run("audit", "report", "--output", "json", *map(str, reversed(files)))
    assert proc.returncode == 0, proc.stderr
    assert "report: %d of %d decisions matched; chain OK: seq 1..%d" % (
        len(answered), len(answered), recs[-1]["seq"]) in proc.stderr
    assert [json.loads(l)["uid"] for l in proc.stdout.splitlines()] == answered


def both_refuse(files, where, message):
    """verify and report both refuse the set, each saying message at where (FILE:LINE)."""
    proc = run("audit", "verify", *map(str, files))
    assert proc.returncode == 1 and "%s: %s" % (where, message) in proc.stdout, proc.stdout
    assert "chain OK" not in proc.stdout
    proc = run("audit", "report", *map(str, files))
    assert proc.returncode == 1, proc.stderr
    assert "%s: chain broken: %s" % (where, message) in proc.stderr, proc.stderr


def test_verify_and_report_refuse_a_reopened_set_that_was_damaged(start_server, tmp_path):
    files, _ = reopened_set(start_server, tmp_path)
    renamed = files[0]
    lines = open(renamed, "rb").readlines()
    last = json.loads(lines[-1])["seq"]
    # The renamed file's last record cut off, at a record boundary.
    renamed.write_bytes(b"".join(lines[:-1]))
    both_refuse(files, "%s:%d" % (renamed, len(lines) - 1),
                "the file ends at seq %d without a rotate record, and %s begins with a reopen "
                "start at seq %d where %d was expected: records are missing (the tail of %s was "
                "truncated" % (last - 1, files[1], last + 1, last, renamed))
    # A reopened file left out: the next reopen start does not link to the file before it.
    renamed.write_bytes(b"".join(lines))
    gap = files[:1] + files[2:]
    first = json.loads(open(files[2], "rb").readline())["seq"]
    both_refuse(gap, "%s:%d" % (renamed, len(lines)),
                "the file ends at seq %d without a rotate record" % last)
    proc = run("audit", "verify", *map(str, gap))
    assert "where %d was expected: records are missing" % (last + 1) in proc.stdout
    assert "begins with a reopen start at seq %d" % first in proc.stdout


def test_a_start_after_an_unclean_stop_does_not_continue_a_file(start_server, tmp_path):
    """The server killed, its file moved to FILE.1 and the server started again: the new file's
    start says "unclean" and links to FILE.1's last record, but only a reopen continues a file
    that does not end with a rotate record, so the pair is refused (each file alone is OK)."""
    log = tmp_path / "unclean.log"
    srv = start_server(audit=False, audit_log=log, audit_sync="always")
    conn = srv.connect()
    for i in range(3):
        assert status_of(srv, "validate", prod_review("before-%d" % i), conn) == 200
    srv.stop(signal.SIGKILL)
    older = tmp_path / "unclean.log.1"
    os.rename(log, older)
    srv = start_server(audit=False, audit_log=log, audit_sync="always")
    assert status_of(srv, "validate", prod_review("after"), srv.connect()) == 200
    assert srv.stop() == 0
    start = records([log])[0]
    assert start["event"] == "start" and start["after"] == "unclean"
    assert start["prev"] == records([older])[-1]["hash"]
    for f in (older, log):
        assert run("audit", "verify", str(f)).returncode == 0
    both_refuse([older, log], "%s:%d" % (older, len(records([older]))),
                "the file ends at seq %d without a rotate record: its tail was truncated (%s "
                "begins with a start after \"unclean\"" % (start["seq"] - 1, log))


def test_rotation_under_load_keeps_the_chain(start_server):
    srv = start_server(audit_sync="always", audit_max_size=16384, audit_max_files=1000)
    answered = load(srv, per_thread=80)
    assert srv.stop() == 0
    paths = log_files(srv.audit_path)
    assert len(paths) > 5, paths
    for p in paths[:-1]:
        assert os.path.getsize(p) <= 16384 + 300
    recs = verify_both(paths, "--sealed")
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    uids = [r["uid"] for r in recs if r["event"] == "decision"]
    assert sorted(uids) == sorted(answered)  # each exactly once
    assert len(answered) == 6 * 80
    rotates = [r for r in recs if r["event"] == "rotate"]
    assert len(rotates) == len(paths) - 1


def test_rotation_keeps_max_files(start_server):
    srv = start_server(audit_max_size=8192, audit_max_files=2)
    load(srv, per_thread=40, threads=2)
    assert srv.stop() == 0
    name = srv.audit_path.name
    assert sorted(os.path.basename(p) for p in glob.glob(str(srv.audit_path) + "*")) == [
        name, name + ".1", name + ".2"]
    proc = run("audit", "verify", *log_files(srv.audit_path))
    assert proc.returncode == 0, proc.stdout
    assert "note: the chain starts at seq" in proc.stdout  # older files were removed


def test_full_device_closed_refuses(start_server):
    srv = start_server(audit=False, audit_log="/dev/full", audit_failure="closed")
    conn = srv.connect()
    assert status_of(srv, "validate", prod_review("closed-1"), conn) == 500
    assert status_of(srv, "mutate", prod_review("closed-2", traits=False), conn) == 500
    assert metric(srv, "tableguard_audit_write_errors_total") >= 2
    assert srv.stop() == 0
    assert "audit log write failed" in srv.log_path.read_text()


def test_full_device_open_serves_and_counts(start_server):
    srv = start_server(audit=False, audit_log="/dev/full", audit_failure="open")
    conn = srv.connect()
    for i in range(3):
        status, body = srv.admit("validate", prod_review("open-%d" % i, False), conn=conn)
        assert status == 200
        assert body["response"]["allowed"] is False  # the decision still stands
    assert metric(srv, "tableguard_audit_write_errors_total") >= 3
    assert metric(srv, "tableguard_audit_records_total") == 0
    assert srv.stop() == 0


@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_then_recovers_with_an_intact_chain(start_server, tiny_fs):
    log = tiny_fs / "audit.log"
    srv = start_server(audit=False, audit_log=log, audit_sync="always")
    conn = srv.connect()
    assert status_of(srv, "validate", prod_review("before"), conn) == 200
    filler = tiny_fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # take every free block
        while os.write(fd, b"x" * 1024):
            pass
    except OSError:
        pass
    os.close(fd)
    statuses = [status_of(srv, "validate", prod_review("full-%d" % i), conn) for i in range(20)]
    assert 500 in statuses
    os.unlink(filler)
    assert status_of(srv, "validate", prod_review("after"), conn) == 200
    assert srv.stop() == 0
    recs = verify_both([log], "--sealed")
    uids = [r.get("uid") for r in recs]
    assert "before" in uids and "after" in uids
    for i, status in enumerate(statuses):  # recorded exactly when answered
        assert (("full-%d" % i) in uids) == (status == 200)


def test_stdout_carries_the_same_chain(start_server, tmp_path):
    srv = start_server(audit=False, audit_log="-")
    conn = srv.connect()
    for i in range(4):
        assert status_of(srv, "validate", prod_review("stdout-%d" % i), conn) == 200
    assert srv.stop() == 0
    # The fixture merges stdout and stderr (one write per line each): a shipper would split
    # the two streams; here the audit lines are the ones with a chain.
    shipped = tmp_path / "shipped.log"
    lines = srv.log_path.read_text().splitlines(keepends=True)
    shipped.write_text("".join(l for l in lines if l.startswith('{"time"') and '"hash":"' in l))
    recs = verify_both([shipped], "--sealed")
    assert [r.get("uid") for r in recs if r["event"] == "decision"] == [
        "stdout-%d" % i for i in range(4)]

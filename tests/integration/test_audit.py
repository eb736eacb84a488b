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
import shlex
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICY = os.path.join(ROOT, "policy", "default.yaml")
GVR = {"group": "core.oam.dev", "version": "v1beta1", "resource": "applications"}


def binary():
    path = os.environ.get("TABLEGUARD")
    if not path:
        pytest.skip("TABLEGUARD is not set")
    return path


def run(*args):
    return subprocess.run([binary(), *args], capture_output=True, text=True, timeout=120)


def auditor_check():
    """The independent check, taken verbatim from docs/audit.md so the doc cannot rot."""
    with open(os.path.join(ROOT, "docs", "audit.md")) as f:
        doc = f.read()
    code = re.search(r"```python\n(# audit_check\.py.*?)```", doc, re.S).group(1)
    scope = {"__name__": "audit_check"}
    exec(compile(code, "docs/audit.md", "exec"), scope)
    return scope["check"]


def log_files(path):
    """FILE.N .. FILE.1 FILE: the order the Python check wants."""
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
    args = ["audit", "verify", *flags] + (["--hmac-key", key] if key else [])
    shuffled = random.sample(paths, len(paths))  # the CLI sorts by seq itself
    proc = run(*args, *shuffled)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "chain OK" in proc.stdout
    keybytes = open(key, "rb").read().rstrip(b"\r\n") if key else None
    seq, _ = auditor_check()(paths, keybytes)
    recs = records(paths)
    assert seq == recs[-1]["seq"]
    return recs


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    proc = run("certs", "generate", "--service", "tableguard", "--namespace", "tg",
               "--out", str(d), "--ip", "127.0.0.1")
    assert proc.returncode == 0, proc.stderr
    return d


class Server:
    """The real binary on random loopback ports; stdout and stderr go to files."""

    def __init__(self, certs, workdir, *flags):
        self.certs, self.workdir = certs, workdir
        for _ in range(20):
            self.port, self.mport = random.sample(range(20000, 40000), 2)
            self.out = open(os.path.join(workdir, "stdout-%d" % self.port), "wb")
            self.err = open(os.path.join(workdir, "stderr-%d" % self.port), "wb")
            wrapper = shlex.split(os.environ.get("TABLEGUARD_WRAPPER", ""))
            self.proc = subprocess.Popen(
                wrapper + [binary(), "serve", "--policy", POLICY,
                           "--tls-cert", str(certs / "tls.crt"), "--tls-key", str(certs / "tls.key"),
                           "--listen", "127.0.0.1:%d" % self.port,
                           "--metrics-listen", "127.0.0.1:%d" % self.mport,
                           "--shutdown-delay", "0", *flags],
                stdout=self.out, stderr=self.err)
            if self.wait_ready():
                return
            self.kill()
        pytest.fail("the server did not start: " + self.stderr())

    def wait_ready(self):
        deadline = time.time() + 15
        while time.time() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stderr(self):
        with open(self.err.name, errors="replace") as f:
            return f.read()

    def stdout_path(self):
        return self.out.name

    def metric(self, name):
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.mport, timeout=5).read()
        m = re.search(r"^%s (\S+)$" % re.escape(name), body.decode(), re.M)
        return float(m.group(1))

    def connection(self):
        ctx = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.stderr()
        self.out.close()
        self.err.close()

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.out.close()
        self.err.close()


def review(uid, deletion_protection=True, traits=True, dry_run=False):
    comp = {"name": "orders-table", "type": "aws-dynamodb-kro",
            "properties": {"tableName": "orders-prod"}}
    if traits:
        comp["traits"] = [{"type": "dynamodb-protection-kro",
                           "properties": {"deletionProtection": deletion_protection}}]
    obj = {"apiVersion": "core.oam.dev/v1beta1", "kind": "Application",
           "metadata": {"name": "orders", "namespace": "shop"}, "spec": {"components": [comp]}}
    kind = {"group": "core.oam.dev", "version": "v1beta1", "kind": "Application"}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": kind, "resource": GVR, "requestKind": kind, "requestResource": GVR,
        "name": "orders", "namespace": "shop", "operation": "CREATE",
        "userInfo": {"username": "alice@example.com", "groups": ["team-shop"]},
        "object": obj, "oldObject": None, "dryRun": dry_run, "options": None}})


def post(conn, path, body):
    conn.request("POST", path + "?timeout=10s", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def load(server, seconds=None, per_thread=None, threads=6):
    """Concurrent validate requests on keep-alive connections; returns the uids answered 200
    with their own uid (what the API server would accept), until stopped or the count is done."""
    answered, lock, stop = [], threading.Lock(), threading.Event()

    def worker(t):
        conn, i = server.connection(), 0
        while not stop.is_set() and (per_thread is None or i < per_thread):
            uid = "load-%d-%d" % (t, i)
            i += 1
            try:
                status, body = post(conn, "/validate", review(uid, deletion_protection=i % 2 == 0))
            except (OSError, http.client.HTTPException):
                return  # the server died: whatever was not answered does not count
            if status == 200 and json.loads(body)["response"]["uid"] == uid:
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


def test_every_decision_is_recorded_and_verifies(certs, tmp_path):
    log = str(tmp_path / "audit.log")
    srv = Server(certs, tmp_path, "--audit-log", log, "--audit-sync", "always")
    conn = srv.connection()
    assert post(conn, "/validate", review("deny-1", deletion_protection=False))[0] == 200
    assert post(conn, "/mutate", review("patch-1", traits=False))[0] == 200
    assert post(conn, "/validate", review("dry-1", dry_run=True))[0] == 200
    assert post(conn, "/validate", b"not json")[0] == 400
    assert srv.metric("tableguard_audit_records_total") == 3
    srv.stop()
    recs = verify_both([log], "--sealed")
    assert [r["event"] for r in recs] == ["start", "decision", "decision", "decision", "stop"]
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    deny, patch, dry = recs[1:4]
    assert (deny["uid"], deny["decision"], deny["code"]) == ("deny-1", "deny", 403)
    assert deny["rules"][0]["name"] == "prod-deletion-protection"
    assert deny["rules"][0]["table"] == "orders-prod"
    assert deny["user"] == {"username": "alice@example.com", "groups": ["team-shop"]}
    assert deny["resource"] == dict(GVR, namespace="shop", name="orders")
    assert deny["webhook"] == "validate" and deny["operation"] == "CREATE"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", deny["time"])
    assert (patch["webhook"], patch["decision"]) == ("mutate", "patch")
    assert patch["patch"][0]["path"] == "/spec/components/0/traits"
    assert dry["dryRun"] is True and deny["dryRun"] is False
    assert deny["policy"]["name"] == "default" and len(deny["policy"]["sha256"]) == 64
    assert recs[0]["chain"] == "sha256" and recs[0]["after"] == "new"


def test_hmac_chain_needs_the_key(certs, tmp_path):
    key = tmp_path / "key"
    key.write_bytes(os.urandom(16).hex().encode() + b"\n")
    log = str(tmp_path / "audit.log")
    srv = Server(certs, tmp_path, "--audit-log", log, "--audit-hmac-key", str(key))
    conn = srv.connection()
    for i in range(5):
        assert post(conn, "/validate", review("hmac-%d" % i))[0] == 200
    srv.stop()
    recs = verify_both([log], "--sealed", key=str(key))
    assert recs[0]["chain"] == "hmac-sha256"
    proc = run("audit", "verify", log)
    assert proc.returncode == 1
    assert "audit.log:1: hash mismatch" in proc.stdout and "--hmac-key" in proc.stdout
    with pytest.raises(ValueError):
        auditor_check()([log], None)


@pytest.mark.parametrize("sync", ["none", "batch", "always"])
def test_sigkill_under_load_loses_no_answered_record(certs, tmp_path, sync):
    log = str(tmp_path / "audit.log")
    srv = Server(certs, tmp_path, "--audit-log", log, "--audit-sync", sync)
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
    srv = Server(certs, tmp_path, "--audit-log", log, "--audit-sync", sync)
    assert post(srv.connection(), "/validate", review("after-kill"))[0] == 200
    srv.stop()
    recs2 = verify_both([log], "--sealed")
    start = recs2[len(recs)]
    assert start["event"] == "start" and start["after"] == "unclean"
    assert start["seq"] == recs[-1]["seq"] + 1


def test_rotation_under_load_keeps_the_chain(certs, tmp_path):
    log = str(tmp_path / "audit.log")
    srv = Server(certs, tmp_path, "--audit-log", log, "--audit-sync", "always",
                 "--audit-max-size", "16384", "--audit-max-files", "1000")
    answered = load(srv, per_thread=80)
    srv.stop()
    paths = log_files(log)
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


def test_rotation_keeps_max_files(certs, tmp_path):
    log = str(tmp_path / "audit.log")
    srv = Server(certs, tmp_path, "--audit-log", log, "--audit-max-size", "8192",
                 "--audit-max-files", "2")
    load(srv, per_thread=40, threads=2)
    srv.stop()
    assert sorted(os.path.basename(p) for p in glob.glob(log + "*")) == [
        "audit.log", "audit.log.1", "audit.log.2"]
    proc = run("audit", "verify", *log_files(log))
    assert proc.returncode == 0, proc.stdout
    assert "note: the chain starts at seq" in proc.stdout  # older files were removed


def test_full_device_closed_refuses(certs, tmp_path):
    srv = Server(certs, tmp_path, "--audit-log", "/dev/full", "--audit-failure", "closed")
    conn = srv.connection()
    status, body = post(conn, "/validate", review("closed-1"))
    assert status == 500, body
    status, _ = post(conn, "/mutate", review("closed-2", traits=False))
    assert status == 500
    assert srv.metric("tableguard_audit_write_errors_total") >= 2
    srv.stop()
    assert "audit log write failed" in srv.stderr()


def test_full_device_open_serves_and_counts(certs, tmp_path):
    srv = Server(certs, tmp_path, "--audit-log", "/dev/full", "--audit-failure", "open")
    conn = srv.connection()
    for i in range(3):
        status, body = post(conn, "/validate", review("open-%d" % i, deletion_protection=False))
        assert status == 200
        assert json.loads(body)["response"]["allowed"] is False  # the decision still stands
    assert srv.metric("tableguard_audit_write_errors_total") >= 3
    assert srv.metric("tableguard_audit_records_total") == 0
    srv.stop()


@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_then_recovers_with_an_intact_chain(certs, tmp_path, tiny_fs):
    log = str(tiny_fs / "audit.log")
    srv = Server(certs, tmp_path, "--audit-log", log, "--audit-sync", "always")
    conn = srv.connection()
    assert post(conn, "/validate", review("before"))[0] == 200
    filler = tiny_fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # take every free block
        while os.write(fd, b"x" * 1024):
            pass
    except OSError:
        pass
    os.close(fd)
    statuses = [post(conn, "/validate", review("full-%d" % i))[0] for i in range(20)]
    assert 500 in statuses
    os.unlink(filler)
    assert post(conn, "/validate", review("after"))[0] == 200
    srv.stop()
    recs = verify_both([log], "--sealed")
    uids = [r.get("uid") for r in recs]
    assert "before" in uids and "after" in uids
    for i, status in enumerate(statuses):  # recorded exactly when answered
        assert (("full-%d" % i) in uids) == (status == 200)


def test_stdout_carries_the_same_chain(certs, tmp_path):
    srv = Server(certs, tmp_path, "--audit-log", "-")
    conn = srv.connection()
    for i in range(4):
        assert post(conn, "/validate", review("stdout-%d" % i))[0] == 200
    srv.stop()
    recs = verify_both([srv.stdout_path()], "--sealed")
    assert [r.get("uid") for r in recs if r["event"] == "decision"] == [
        "stdout-%d" % i for i in range(4)]

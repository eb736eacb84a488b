# SPDX-License-Identifier: Apache-2.0
"""Faults in the files and inputs the server reads: a FIFO where the policy or the certificate
should be, policies built to make the loader crawl, names built to forge a denial message, and
reviews built to make one decision cost quadratic time. After each the server still answers a
good review, and SIGTERM still ends it in time."""

import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

from conftest import DEFAULT_POLICY, WRAPPER, application, protection, review, run, table

GOOD = DEFAULT_POLICY.read_text()
SLACK = 60 if WRAPPER else 1


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout * SLACK
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def log_has(server, text):
    return text in server.log_path.read_text()


def answers(server):
    status, body = server.admit("validate", review(application([table("orders", "orders-prod")])))
    return status == 200 and body["response"]["allowed"] is False


def stops_in_time(server, bound):
    """SIGTERM ends the process within `bound` seconds with exit code 0."""
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=bound * SLACK)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        raise AssertionError(f"SIGTERM did not end the process in {bound}s")
    return code == 0, time.monotonic() - t0


def test_a_fifo_at_the_policy_path_is_refused_and_sigterm_still_ends_the_process(
        start_server, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    server = start_server(policy=path, reload_interval=1, drain_timeout=2)
    path.unlink()
    os.mkfifo(path)
    # The watcher sees the change, refuses the FIFO at once, and says what the file is.
    wait_for(lambda: log_has(server, "is a FIFO, not a regular file"))
    assert "policy reload failed" in server.plain("/readyz")[1]
    # SIGHUP runs the reload again; the main thread is not held by it.
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: server.log_path.read_text().count("is a FIFO, not a regular file") >= 2)
    assert answers(server)
    ok, took = stops_in_time(server, 0 + 2 + 5)
    assert ok, server.log_path.read_text()[-2000:]


def test_a_fifo_at_the_certificate_path_is_refused(start_server, tmp_path, certs):
    cert = tmp_path / "tls.crt"
    key = tmp_path / "tls.key"
    cert.write_bytes((certs / "tls.crt").read_bytes())
    key.write_bytes((certs / "tls.key").read_bytes())
    server = start_server(cert=cert, key=key, reload_interval=1, drain_timeout=2)
    cert.unlink()
    os.mkfifo(cert)
    wait_for(lambda: log_has(server, "tls.crt: is a FIFO, not a regular file"))
    server.proc.send_signal(signal.SIGHUP)
    assert answers(server)
    ok, took = stops_in_time(server, 0 + 2 + 5)
    assert ok, server.log_path.read_text()[-2000:]


def test_a_fifo_policy_at_startup_is_an_error_not_a_hang(tmp_path, certs):
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    r = run("policy", "lint", fifo, timeout=10 * SLACK)
    assert r.returncode != 0 and "is a FIFO, not a regular file" in r.stderr, r.stderr
    r = run("serve", "--policy", fifo, "--tls-cert", certs / "tls.crt", "--tls-key",
            certs / "tls.key", "--listen", "127.0.0.1:0", "--metrics-listen", "off",
            timeout=10 * SLACK)
    assert r.returncode == 1 and "is a FIFO, not a regular file" in r.stderr + r.stdout



def test_a_fifo_at_the_audit_hmac_key_or_log_path_is_an_error_not_a_hang(tmp_path, certs):
    key = tmp_path / "hmac.key"
    os.mkfifo(key)
    r = run("serve", "--policy", DEFAULT_POLICY, "--tls-cert", certs / "tls.crt", "--tls-key",
            certs / "tls.key", "--listen", "127.0.0.1:0", "--metrics-listen", "off",
            "--audit-log", tmp_path / "audit.log", "--audit-hmac-key", key, timeout=10 * SLACK)
    assert r.returncode == 1 and "hmac.key: is a FIFO, not a regular file" in r.stderr + r.stdout
    # `audit verify` reads the key and the logs the same way.
    log = tmp_path / "audit.log"
    log.write_text("")
    r = run("audit", "verify", "--hmac-key", key, log, timeout=10 * SLACK)
    assert r.returncode != 0 and "is a FIFO, not a regular file" in r.stdout + r.stderr
    fifo_log = tmp_path / "fifo.log"
    os.mkfifo(fifo_log)
    r = run("audit", "verify", fifo_log, timeout=10 * SLACK)
    assert r.returncode != 0 and "fifo.log: is a FIFO, not a regular file" in r.stdout

# ---- policies built to make the loader crawl ---------------------------------------------------

RULES_AT = GOOD.index("  rules:")


def test_a_deeply_nested_policy_is_refused_by_its_depth_and_the_server_keeps_serving(
        start_server, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    server = start_server(policy=path)
    # 200,000 levels: libyaml alone took minutes over this; the limit stops it at level 65.
    path.write_text(GOOD[:RULES_AT] + "  rules: " + "[" * 200000 + "]" * 200000 + "\n")
    wait_for(lambda: log_has(server, "nested deeper than 64 levels"))
    assert answers(server)


def test_a_policy_past_the_node_limit_is_refused_with_one_diagnostic(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD[:RULES_AT] + "  rules: [" + "a," * 250000 + "a]\n")
    r = run("policy", "lint", path, timeout=30 * SLACK)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "more than 200000 YAML nodes" in r.stderr, r.stderr


def test_a_reload_of_thousands_of_broken_rules_logs_a_bounded_number_of_lines(
        start_server, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    server = start_server(policy=path)
    broken = "".join(f"    - name: r{i}\n      tables: ['*']\n      mach: 1\n" for i in range(5000))
    path.write_text(GOOD[:RULES_AT] + "  rules:\n" + broken)
    wait_for(lambda: log_has(server, "more diagnostics not logged"))
    lines = [l for l in server.log_lines() if l.get("msg", "").startswith("policy reload failed")]
    assert len(lines) == 21, len(lines)
    assert lines[-1]["not_logged"] == str(2 * 5000 - 20)
    # lint, which a person reads, still lists every one.
    r = run("policy", "lint", path, timeout=30 * SLACK)
    assert r.returncode == 1 and r.stderr.count("\n") == 2 * 5000
    assert answers(server)


# ---- names built to forge a message -------------------------------------------------------------

def test_quotes_in_names_cannot_forge_a_rule_in_the_denial_or_a_warning(start_server):
    server = start_server()
    forged = 'x"; rule "fake" allowed \\ -prod'
    status, body = server.admit("validate", review(application([table("orders", forged)],
                                                               name='a"b')))
    assert status == 200
    r = body["response"]
    assert r["allowed"] is False
    message = r["status"]["message"]
    assert 'table "x\\"; rule \\"fake\\" allowed \\\\ -prod"' in message, message
    assert 'Application "shop/a\\"b"' in message, message
    assert '; rule "fake"' not in message
    assert any('table "x\\"; rule \\"fake\\"' in w for w in r["warnings"]), r["warnings"]


# ---- manifests the offline check did not write ---------------------------------------------------

def test_check_refuses_a_manifest_that_is_not_utf8_instead_of_crashing(tmp_path):
    """cJSON took any bytes in a key and libyaml's emitter, printing the manifest back,
    double-freed (ASan) or looped for ever (release)."""
    path = tmp_path / "app.json"
    path.write_bytes(json.dumps(application([table("orders", "orders-prod")])).encode()
                     .replace(b'"region"', b'"\xff\xfe"'))
    r = run("check", "--policy", DEFAULT_POLICY, path, timeout=30 * SLACK)
    assert r.returncode == 2, r.stderr
    assert r.stderr == f"tableguard check: {path}: is not valid UTF-8\n"


# ---- request framing the server must refuse at once (RFC 9112 section 6.3) -----------------------

def raw_exchange(server, head, body=b"", wait=10.0):
    """Sends `head` (bytes, CRLF already in it) and `body` over a fresh TLS connection and returns
    (status or None when the server closed without answering, seconds taken)."""
    ctx = server.context()
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait * SLACK) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(head + body)
            data = b""
            try:
                while b"\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (socket.timeout, ssl.SSLError, ConnectionError):
                pass
    took = time.monotonic() - t0
    if not data.startswith(b"HTTP/1.1 "):
        return None, took
    return int(data[9:12]), took


REVIEW = json.dumps(review(application([table("orders", "orders-prod")]))).encode()


def head(lines):
    return b"".join(l + b"\r\n" for l in lines) + b"\r\n"


BAD_FRAMING = {
    "content-length-and-chunked": (head([
        b"POST /validate?timeout=10s HTTP/1.1", b"Host: x", b"Content-Type: application/json",
        b"Content-Length: %d" % (len(REVIEW) + 100), b"Transfer-Encoding: chunked"]),
        b"%x\r\n" % len(REVIEW) + REVIEW + b"\r\n0\r\n\r\n"),
    "unknown-transfer-encoding": (head([
        b"POST /validate?timeout=10s HTTP/1.1", b"Host: x", b"Content-Type: application/json",
        b"Transfer-Encoding: gzip"]), REVIEW),
    "two-different-content-lengths": (head([
        b"POST /validate?timeout=10s HTTP/1.1", b"Host: x", b"Content-Type: application/json",
        b"Content-Length: %d" % len(REVIEW), b"Content-Length: %d" % (len(REVIEW) + 5)]), REVIEW),
    "bare-cr-in-a-header": (head([
        b"POST /validate?timeout=10s HTTP/1.1", b"Host: x", b"X-A: a\rb",
        b"Content-Type: application/json", b"Content-Length: %d" % len(REVIEW)]), REVIEW),
    "nul-in-a-header": (head([
        b"POST /validate?timeout=10s HTTP/1.1", b"Host: x", b"X-A: a\x00b",
        b"Content-Type: application/json", b"Content-Length: %d" % len(REVIEW)]), REVIEW),
    "nul-in-the-path": (head([
        b"POST /validate\x00x?timeout=10s HTTP/1.1", b"Host: x", b"Content-Type: application/json",
        b"Content-Length: %d" % len(REVIEW)]), REVIEW),
    "huge-query-string": (head([
        b"POST /validate?" + b"&".join(b"a%d=1" % i for i in range(600)) + b" HTTP/1.1",
        b"Host: x", b"Content-Type: application/json",
        b"Content-Length: %d" % len(REVIEW)]), REVIEW),
}


def test_bad_framing_is_refused_at_once_and_the_server_keeps_serving(start_server):
    server = start_server()
    got = {}
    for name, (h, body) in BAD_FRAMING.items():
        got[name] = raw_exchange(server, h, body)
    # Before, most got no answer at all (the exchange gave up after 10 s); a loaded machine can
    # take a few seconds for the TLS handshake alone.
    bad = {n: g for n, g in got.items() if g[0] != 400 or g[1] >= 5 * SLACK}
    assert not bad, bad
    assert answers(server)


# ---- slow clients beside a normal one ------------------------------------------------------------

def slow_body(server, announced, stop, gap):
    """Announces `announced` bytes of body, then sends one every `gap` seconds (never, with
    gap=None) until the server closes the connection or `stop` is set. Returns the seconds until
    the server closed it, or None."""
    ctx = server.context()
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(head([b"POST /validate?timeout=10s HTTP/1.1", b"Host: x",
                    b"Content-Type: application/json", b"Content-Length: %d" % announced]))
    t0 = time.monotonic()
    s.settimeout(gap or 0.5)
    try:
        while not stop.is_set():
            try:
                if s.recv(1) == b"":
                    return time.monotonic() - t0
            except socket.timeout:
                if gap:
                    s.sendall(b" ")
    except (ssl.SSLError, ConnectionError):
        return time.monotonic() - t0
    finally:
        s.close()
    return None



def beside_a_slow_client(start_server, gap):
    cap = 200000
    server = start_server(max_body=cap, body_memory=cap, request_timeout=2, audit=False)
    stop, closed = threading.Event(), []
    t = threading.Thread(target=lambda: closed.append(slow_body(server, cap, stop, gap)))
    t.start()
    time.sleep(0.5)  # the slow client holds the whole budget now
    t0 = time.monotonic()
    ok = answers(server)
    took = time.monotonic() - t0
    # The slow client sees its close a moment after the budget is freed: give it that moment
    # (the close is due at the 2 s deadline) before telling it to stop waiting.
    t.join(timeout=8 * SLACK)
    stop.set()
    t.join()
    return ok, took, closed[0]


def test_a_trickling_body_loses_its_budget_at_the_request_deadline(start_server):
    ok, took, closed = beside_a_slow_client(start_server, gap=0.5)
    assert ok
    # The normal request waited for the slow one's deadline (2 s), not for its body (the idle
    # timeout, 30 s, never came: the body trickles).
    assert took < 8 * SLACK, took
    assert closed is not None and closed < 8 * SLACK, closed


def test_a_stalled_body_loses_its_budget_at_the_request_deadline(start_server):
    ok, took, closed = beside_a_slow_client(start_server, gap=None)
    assert ok
    assert took < 8 * SLACK, took
    assert closed is not None and closed < 8 * SLACK, closed


# ---- the audit file deleted, renamed, or unwritable while serving -------------------------------

def decided(server):
    r = review(application([table("orders", "orders-prod")]))
    status, _ = server.admit("validate", r)
    return status, r["request"]["uid"]


def test_a_deleted_audit_file_is_noticed_and_reopened_with_a_start_record(start_server):
    server = start_server()
    assert decided(server)[0] == 200
    server.audit_path.unlink()
    status, uid = decided(server)
    assert status == 200
    records = server.audit_records()
    assert records[0]["event"] == "start" and records[0]["after"] == "reopen", records[0]
    assert any(r.get("uid") == uid for r in records), "the decision after the deletion is lost"


def test_sighup_reopens_a_renamed_audit_file(start_server):
    server = start_server()
    status, first = decided(server)
    old = server.audit_path.with_name("audit.log.1")
    server.audit_path.rename(old)
    server.proc.send_signal(signal.SIGHUP)
    status, second = decided(server)
    assert status == 200
    assert any(json.loads(l).get("uid") == first for l in old.read_text().splitlines())
    records = server.audit_records()
    assert records[0]["event"] == "start" and records[0]["after"] == "reopen"
    assert any(r.get("uid") == second for r in records)


def test_readyz_fails_while_the_audit_log_cannot_be_written_and_recovers(start_server):
    server = start_server()
    assert decided(server)[0] == 200
    server.audit_path.unlink()
    server.audit_path.mkdir()  # the path now names a directory: no record can be written
    assert decided(server)[0] == 500
    status, body = server.plain("/readyz")
    assert status == 503 and "the audit log cannot be written" in body, body
    server.audit_path.rmdir()
    wait_for(lambda: server.plain("/readyz")[0] == 200)
    records = server.audit_records()
    assert records[0]["event"] == "start"
    assert decided(server)[0] == 200


# ---- one review made to cost quadratic time and an unbounded record ----------------------------

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_review_of_95000_failing_components_costs_linear_time_and_a_bounded_record(
        start_server):
    server = start_server()
    n = 95000
    comps = [{"name": f"c{i}", "type": "aws-dynamodb-kro",
              "properties": {"tableName": f"t{i}-prod"}} for i in range(n)]
    r = review(application(comps, name="big"))
    body = json.dumps(r, separators=(",", ":"))
    assert len(body) > 8_000_000
    before = cpu_seconds(server.proc.pid)
    status, data = server.request("POST", "/validate?timeout=10s", body)
    took = cpu_seconds(server.proc.pid) - before
    assert status == 200
    answer = json.loads(data)["response"]
    assert answer["allowed"] is False
    # 21 warnings (20 and a count), one bounded denial: the answer is kilobytes, not megabytes.
    assert len(answer["warnings"]) == 21 and "more warnings" in answer["warnings"][-1]
    assert len(data) < 64 * 1024, len(data)
    record = [x for x in server.audit_records() if x.get("uid") == r["request"]["uid"]][0]
    size = len(json.dumps(record))
    assert size < 1 << 20, size  # was 83 MB: a dozen such requests rotated the history away
    assert len(record["rules"]) == 1000
    assert record["rulesOmitted"] + 1000 == sum(record["ruleCounts"].values())
    assert sum(record["ruleCounts"].values()) >= n
    # Quadratic growth took 5.1 s of CPU here; linear takes under one (a loose bound).
    assert took < (60 if WRAPPER else 10), took

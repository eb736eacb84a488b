# SPDX-License-Identifier: Apache-2.0
"""`tableguard audit report` on logs the real server wrote: the question "every change to a
production table's protection in the last 90 days, and who made it" in one command, the
filters and outputs, rotation boundaries, and each bad input (a broken chain, a torn last line,
a file of another chain, a file that is no audit log, an HMAC log without its key)."""

import csv
import io
import json
import os
import random

import jsonpatch

from conftest import ROOT, application, decode_patch, protection, review, run, table

QUESTION = ["audit", "report", "--since", "90d", "--table", "*-prod", "--changed"]


def app(dp=True, pitr=True, table_name="orders-prod", name="orders", namespace="shop"):
    return application([table("orders", table_name,
                              [protection(deletionProtection=dp, pointInTimeRecovery=pitr)])],
                       name=name, namespace=namespace)


def both(server, rv):
    """What the API server does: /mutate, then /validate on the object the patch made."""
    status, resp = server.admit("mutate", rv)
    assert status == 200
    ops = decode_patch(resp)
    if ops:
        rv["request"]["object"] = jsonpatch.apply_patch(rv["request"]["object"], ops)
    status, _ = server.admit("validate", rv)
    assert status == 200


def workload(server):
    """Changes and non-changes to production and other tables, by several people."""
    bare = application([table("orders", "orders-prod")])  # mutate adds the protection trait
    both(server, review(bare, username="carol@example.com"))                         # create
    both(server, review(app(pitr=False), "UPDATE", old=app(), username="dave@example.com"))
    both(server, review(app(dp=False), "UPDATE", old=app(), username="mallory@example.com"))
    both(server, review(app(), "UPDATE", old=app(), username="erin@example.com"))    # no change
    both(server, review(app(pitr=False), "UPDATE", old=app(), dry_run=True,
                        username="frank@example.com"))
    both(server, review(app(pitr=False, table_name="carts-dev", name="carts"), "UPDATE",
                        old=app(table_name="carts-dev", name="carts"), username="gina@example.com"))


def report(*args):
    proc = run("audit", "report", *[str(a) for a in args])
    return proc.returncode, proc.stdout, proc.stderr


def csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_the_question_in_one_command(start_server):
    server = start_server()
    workload(server)
    server.stop()
    proc = run(*QUESTION, "--output", "csv", server.audit_path)
    assert proc.returncode == 0, proc.stderr
    rows = csv_rows(proc.stdout)
    # The create, and dave's point-in-time-recovery switch-off; not mallory's denied attempt,
    # erin's no-op, frank's dry run or gina's development table.
    assert [(r["user"], r["operation"], r["table"]) for r in rows] == [
        ("carol@example.com", "CREATE", "orders-prod"), ("dave@example.com", "UPDATE", "orders-prod")]
    dave = rows[1]
    assert (dave["before.pointInTimeRecovery"], dave["after.pointInTimeRecovery"]) == ("true", "false")
    assert dave["webhook"] == "validate" and dave["decision"] == "allow"
    # The text form says who changed what, one line each.
    text = run(*QUESTION, server.audit_path).stdout.splitlines()
    assert len(text) == 2
    assert "dave@example.com" in text[1] and "pointInTimeRecovery true->false" in text[1]
    assert "deletionProtection none->true" in text[0]
    assert "chain OK" in proc.stderr


def test_filters(start_server):
    server = start_server()
    workload(server)
    server.stop()
    log = server.audit_path
    rc, out, _ = report("--decision", "deny", "--output", "csv", log)
    assert rc == 0 and {r["user"] for r in csv_rows(out)} == {"mallory@example.com"}
    rc, out, _ = report("--user", "d*", "--output", "csv", log)
    assert {r["user"] for r in csv_rows(out)} == {"dave@example.com"}
    rc, out, _ = report("--namespace", "other", "--output", "csv", log)
    assert csv_rows(out) == []
    rc, out, _ = report("--table", "CARTS-*", "--output", "csv", log)  # tables: case-insensitive
    assert {r["table"] for r in csv_rows(out)} == {"carts-dev"}
    rc, out, _ = report("--until", "2001-01-01T00:00:00Z", log)
    assert rc == 0 and out == ""
    rc, out, _ = report("--since", "2001-01-01", "--decision", "allow,patch", "--output", "json", log)
    decisions = {json.loads(l)["decision"] for l in out.splitlines()}
    assert decisions == {"allow", "patch"}


def test_json_lines_are_the_records_as_written(start_server):
    server = start_server()
    workload(server)
    server.stop()
    rc, out, _ = report("--output", "json", server.audit_path)
    assert rc == 0
    written = [l for l in server.audit_path.read_text().splitlines() if '"event":"decision"' in l]
    assert out.splitlines() == written


def test_rotated_files_in_any_order(start_server):
    server = start_server(audit_max_size=4096, audit_max_files=50)
    for i in range(12):
        workload(server)
    server.stop()
    files = sorted(str(p) for p in server.audit_path.parent.glob(server.audit_path.name + "*"))
    assert len(files) > 3
    decisions = sum(1 for f in files for l in open(f) if '"event":"decision"' in l)
    rc, out, err = report("--output", "json", *random.sample(files, len(files)))
    assert rc == 0, err
    seqs = [json.loads(l)["seq"] for l in out.splitlines()]
    assert len(seqs) == decisions and seqs == sorted(seqs)
    rc, out, err = report(*QUESTION[2:], "--output", "csv", *files)
    assert rc == 0 and len(csv_rows(out)) == 24  # 12 rounds x (the create, dave's change)


def test_broken_chain_reports_what_came_before(start_server, tmp_path):
    server = start_server()
    workload(server)
    server.stop()
    lines = server.audit_path.read_bytes().splitlines(keepends=True)
    k = len(lines) // 2
    lines[k] = lines[k].replace(b"alice", b"alicf").replace(b'"allow"', b'"deny!"')
    if b"deny!" not in lines[k]:
        lines[k] = lines[k].replace(b'"seq":', b'"seq": ', 1)
    bad = tmp_path / "edited.log"
    bad.write_bytes(b"".join(lines))
    rc, out, err = report("--output", "json", bad)
    assert rc == 1
    assert f"edited.log:{k + 1}: chain broken: hash mismatch" in err
    before = [l.decode().rstrip("\n") for l in lines[:k] if b'"event":"decision"' in l]
    assert out.splitlines() == before


def test_torn_last_line(start_server, tmp_path):
    server = start_server()
    workload(server)
    server.stop(sig=9)
    data = server.audit_path.read_bytes()
    torn = tmp_path / "torn.log"
    torn.write_bytes(data + data.splitlines(keepends=True)[-2][:57])
    n = data.count(b"\n")
    rc, out, err = report("--output", "json", torn)
    assert rc == 1
    assert f"torn.log:{n + 1}: incomplete last record without a newline" in err
    assert len(out.splitlines()) == data.count(b'"event":"decision"')


def test_file_of_another_chain(start_server):
    one, two = start_server(), start_server()
    workload(one)
    workload(two)
    one.stop()
    two.stop()
    # Hostnames are equal here, so the seq gap is what shows; both start at seq 1.
    rc, out, err = report(one.audit_path, two.audit_path)
    assert rc == 1
    assert "chain broken: seq 1 where" in err and "where 1 was expected" not in err
    assert out.count("\n") == sum(1 for l in open(one.audit_path) if '"event":"decision"' in l)


def test_file_of_another_replica(tmp_path):
    """Two replicas' files given together: the message says so."""
    src = ROOT / "tests" / "cases" / "audit-tamper" / "good" / "audit.log"
    lines = src.read_bytes().splitlines(keepends=True)
    other = tmp_path / "other.log"
    # The corpus' own chain starts at seq 1; make_corpus writes another replica's the same way.
    import importlib.util
    spec = importlib.util.spec_from_file_location("mc", ROOT / "tests" / "cases" / "audit-tamper" / "make_corpus.py")
    mc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mc)
    recs, prev = [], mc.GENESIS
    last_seq = json.loads(lines[-1])["seq"]
    for seq in range(last_seq + 1, last_seq + 4):
        m = [(k, "tableguard-1" if k == "replica" else v) for k, v in mc.decision(seq)]
        line, prev = mc.seal(m, prev, None)
        recs.append(line)
    other.write_bytes(b"".join(recs))
    rc, out, err = report(src, other)
    assert rc == 1
    assert "of replica tableguard-1 does not continue" in err and "a file from another log" in err


def test_not_an_audit_log(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    rc, out, err = report(f)
    assert rc == 2 and "notes.txt:1: not an audit log" in err and out == ""
    rc, out, err = report(tmp_path / "missing.log")
    assert rc == 2 and "cannot open" in err


def test_hmac_log_needs_its_key(start_server, tmp_path):
    key = tmp_path / "key"
    key.write_text("k" * 32 + "\n")
    server = start_server(audit_hmac_key=key)
    workload(server)
    server.stop()
    rc, out, err = report(server.audit_path)
    assert rc == 1 and out == ""
    assert ":1: chain broken: the log is HMAC-chained" in err and "--hmac-key" in err
    rc, out, err = report("--hmac-key", key, *QUESTION[2:], server.audit_path)
    assert rc == 0 and len(out.splitlines()) == 2


def test_version_1_records():
    """A log written before records named tables: --table falls back on the rules' tables."""
    good = ROOT / "tests" / "cases" / "audit-tamper" / "good" / "audit.log"
    rc, out, err = report("--table", "*-prod", "--output", "csv", good)
    assert rc == 0
    rows = csv_rows(out)
    assert rows and all(r["decision"] == "deny" for r in rows)
    assert all(r["rules"] == "prod-deletion-protection" for r in rows)


def test_usage_errors(tmp_path):
    for args in (["--since", "90x"], ["--decision", "maybe"], ["--output", "xml"],
                 ["--since", "2025-13-01"], ["--bogus"], []):
        rc, out, err = report(*args, tmp_path / "x.log") if args else report()
        assert rc == 2, args
    rc, out, err = report("--help")
    assert rc == 0 and "--changed" in out


def test_audit_stdout_copies_the_file_line_for_line(start_server):
    """--audit-stdout on: the container log carries the file's records, the same chain."""
    server = start_server(audit_stdout="on")
    workload(server)
    assert server.stop() == 0
    written = server.audit_path.read_text().splitlines()
    # The server's stdout and stderr share log_path here; the records are the lines that are
    # records, in order, and nothing else was changed.
    copied = [l for l in server.log_path.read_text().splitlines()
              if l.startswith('{"time"') and '"hash":"' in l]
    assert copied == written
    assert [json.loads(l)["event"] for l in copied][0] == "start"
    assert json.loads(copied[-1])["event"] == "stop"
    stream = server.audit_path.parent / "stream.log"
    stream.write_text("\n".join(copied) + "\n")
    rc, out, err = report("--output", "json", stream)
    assert rc == 0, err


TAMPER = ROOT / "tests" / "cases" / "audit-tamper"


def test_report_accepts_and_refuses_the_files_verify_does():
    """Each case of the verify corpus given as files (no --checkpoint, no --sealed): report
    accepts the sets verify accepts (rotated, reopened) and breaks on the damage verify finds;
    across a reopen, with verify's words at the same line. (A next file that does not link at
    all and is no reopen, report names at its first line, as before.)"""
    checked = 0
    for case in sorted(p for p in TAMPER.iterdir() if (p / "args").exists()):
        args = (case / "args").read_text().split()
        if "--checkpoint" in args:
            continue
        args = [a for a in args if a != "--sealed"]
        verify = run("audit", "verify", *args, cwd=case)
        rep = run("audit", "report", *args, cwd=case)
        assert rep.returncode == verify.returncode, (case.name, verify.stdout, rep.stderr)
        if verify.returncode == 1:
            where, _, what = verify.stdout.splitlines()[-1].partition(": ")
            if "reopen" in what:
                assert "%s: chain broken: %s" % (where, what) in rep.stderr, rep.stderr
            elif "without a rotate record" not in what:
                assert rep.stderr.startswith(where + ": "), (case.name, verify.stdout, rep.stderr)
        checked += 1
    assert checked >= 20

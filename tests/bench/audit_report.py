#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark of `tableguard audit report` on a large generated log: peak RSS and throughput at
two sizes, to show that memory stays flat as the log grows (it streams one line at a time).

usage: audit_report.py --binary BUILD/tableguard --dir WORKDIR [--mib 1024] [--out FRAGMENT.md]
                       [--json ROWS.json]   (the measurements, for report.py's target rows)

The log is a valid hash chain of schema 2 decision records (about 1 KiB each, a year of
traffic, production and development tables, some protection changes) written by an independent
writer that follows docs/audit.md. The small size is a prefix of the large one.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

GENESIS = "0" * 64
USERS = ["alice@example.com", "bob@example.com", "ci-deployer", "dave@example.com"]


def record(seq, t, rng):
    prod = rng % 3 != 0
    table = "orders-%d-%s" % (rng % 97, "prod" if prod else "dev")
    changed = rng % 20 == 0
    before = {"deletionProtection": True, "pointInTimeRecovery": True}
    after = {"deletionProtection": True, "pointInTimeRecovery": not changed}
    return [
        ("time", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (seq % 1000)),
        ("seq", seq), ("replica", "tableguard-0"), ("event", "decision"), ("schema", 2),
        ("uid", "%08x-6393-11e8-b7cc-42010a800002" % seq), ("webhook", "validate"),
        ("operation", "UPDATE"), ("dryRun", False),
        ("user", {"username": USERS[rng % len(USERS)], "groups": ["team-shop", "system:authenticated"]}),
        ("resource", {"group": "core.oam.dev", "version": "v1beta1", "resource": "applications",
                      "namespace": "shop-%d" % (rng % 13), "name": "orders-%d" % (rng % 97)}),
        ("decision", "allow"), ("code", 200),
        ("rules", [{"name": "prod-point-in-time-recovery", "action": "warn", "component": "orders-table",
                    "table": table, "message": "Application shop/orders: table %s should have "
                    "pointInTimeRecovery: true" % table}] if changed and prod else []),
        ("tables", [{"component": "orders-table", "table": table, "oldTable": table,
                     "profile": "production" if prod else "development", "before": before,
                     "after": after, "transition": None, "exception": None,
                     "rules": ["prod-point-in-time-recovery"] if changed and prod else []},
                    {"component": "sessions", "table": "sessions-%d-dev" % (rng % 31),
                     "oldTable": "sessions-%d-dev" % (rng % 31), "profile": "development",
                     "before": before, "after": before, "transition": None, "exception": None,
                     "rules": []}]),
        ("patch", []), ("policy", {"name": "default", "sha256": "9f86d081884c7d659a2feaa0c55ad015"
                                   "a3bf4f1b2b0b822cd15d6c15b0f00a08"})]


def generate(path, mib, marks):
    """Writes the log; returns {mark_mib: byte offset} for the prefixes asked for."""
    limit, prev, seq, out, offsets = mib << 20, GENESIS, 0, 0, {}
    t0 = int(time.time()) - 365 * 86400
    with open(path, "wb", buffering=1 << 20) as f:
        while out < limit:
            seq += 1
            rng = (seq * 2654435761) & 0xFFFFFFFF
            members = record(seq, t0 + seq * 365 * 86400 // (limit // 1100), rng)
            members.append(("prev", prev))
            body = json.dumps(dict(members), separators=(",", ":")).encode()
            prev = hashlib.sha256(body).hexdigest()
            line = body[:-1] + b',"hash":"' + prev.encode() + b'"}\n'
            f.write(line)
            out += len(line)
            for m in marks:
                if m not in offsets and out >= m << 20:
                    offsets[m] = out
    return offsets, seq


def measure(argv):
    """Runs argv with stdout to /dev/null; returns (peak RSS KiB, seconds, exit status, stderr).
    The peak is VmHWM of the process's own memory, read while it runs: the rusage of a child
    forked from this (large) Python process would count the parent's pages from before exec."""
    t = time.monotonic()
    hwm = 0
    with open(os.devnull, "wb") as null:
        p = subprocess.Popen(argv, stdout=null, stderr=subprocess.PIPE)
        status = "/proc/%d/status" % p.pid
        while p.poll() is None:
            try:
                with open(status) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            hwm = max(hwm, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.02)
        err = p.stderr.read().decode()
    return hwm, time.monotonic() - t, p.returncode, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--out")
    ap.add_argument("--json")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    big = os.path.join(a.dir, "audit-big.log")
    small_mib = max(1, a.mib // 8)
    t = time.monotonic()
    offsets, records = generate(big, a.mib, [small_mib])
    gen_s = time.monotonic() - t
    small = os.path.join(a.dir, "audit-small.log")
    with open(big, "rb") as src, open(small, "wb") as dst:
        dst.write(src.read(offsets[small_mib]))
    queries = [("the question: `--since 90d --table '*-prod' --changed`",
                ["--since", "90d", "--table", "*-prod", "--changed"]),
               ("every decision as JSON lines: `--output json`", ["--output", "json"])]
    rows, measured = [], []
    for label, args in queries:
        for path in (small, big):
            size = os.path.getsize(path)
            rss, secs, rc, err = measure([a.binary, "audit", "report", *args, path])
            if rc != 0:
                sys.exit("audit report failed (%d): %s" % (rc, err))
            rows.append((label, "%.0f MiB" % (size / 1048576), "%.0f" % (rss / 1024),
                         "%.1f" % secs, "%.0f" % (size / 1048576 / secs)))
            measured.append({"query": label, "bytes": size, "peak_rss_kib": rss,
                             "seconds": secs, "largest": path == big})
    md = ["## `audit report` on a large log", "",
          "`python3 tests/bench/audit_report.py --binary %s --dir DIR --mib %d` "
          "(part of `make bench`): a generated, valid chain of %d schema 2 decision records (about "
          "1 KiB each, a year of traffic; generated in %.0f s), reported whole and as its first "
          "%d MiB. The report verifies every hash while it reads." % (a.binary, a.mib, records, gen_s,
                                                                     small_mib),
          "", "| query | log | peak RSS (MiB) | seconds | MiB/s |", "| --- | --- | --- | --- | --- |"]
    md += ["| %s |" % " | ".join(r) for r in rows]
    md += ["", "Peak RSS is VmHWM of the `tableguard` process, read every 20 ms while it runs. It "
           "is the same for the small and the large log: memory does not grow with the log (one "
           "line and one parsed record at a time).", ""]
    text = "\n".join(md)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"records": records, "rows": measured}, f)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    os.unlink(big)
    os.unlink(small)


if __name__ == "__main__":
    main()

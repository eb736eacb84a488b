#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes the audit-tamper corpus: good and tampered logs made by an independent writer, with the
# exact output and exit status `tableguard audit verify` must give (tests/unit/test_audit.c).
"""Regenerate with: python3 tests/cases/audit-tamper/make_corpus.py

Each case is a directory holding the log files, `args` (the verify arguments, one per line,
relative to the case directory), `stdout` (the exact expected output) and `status` (the exit
status). The writer below follows docs/audit.md, not the C code, so the corpus also checks that
the documented format is the one the C verifier accepts.
"""
import hashlib
import hmac
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GENESIS = "0" * 64
KEY = b"corpus-hmac-key-0123456789abcdef"


def digest(body, key):
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def seal(members, prev, key):
    """One log line (bytes with newline) for an ordered list of members, and its hash."""
    obj = dict(members)
    obj["prev"] = prev
    body = json.dumps(obj, separators=(",", ":")).encode()
    h = digest(body, key)
    return body[:-1] + b',"hash":"' + h.encode() + b'"}\n', h


def members(seq, event, extra=()):
    m = [("time", "2025-01-02T03:04:%02d.%03dZ" % (seq % 60, seq)), ("seq", seq),
         ("replica", "tableguard-0"), ("event", event)]
    return m + list(extra)


def decision(seq, allow=True):
    return members(seq, "decision", [
        ("uid", "uid-%04d" % seq), ("webhook", "validate"), ("operation", "UPDATE"),
        ("dryRun", False), ("user", {"username": "alice", "groups": ["dev"]}),
        ("resource", {"group": "core.oam.dev", "version": "v1beta1", "resource": "applications",
                      "namespace": "shop", "name": "orders"}),
        ("decision", "allow" if allow else "deny"), ("code", 200 if allow else 403),
        ("rules", [] if allow else [{"name": "prod-deletion-protection", "action": "deny",
                                     "component": "orders", "table": "orders-prod",
                                     "message": "enable deletion protection"}]),
        ("patch", []), ("policy", {"name": "default", "sha256": "ab" * 32})])


def chain(first, events, key=None, prev=GENESIS):
    """Lines and hashes for records first.. with the given events ("d" decision, "D" deny)."""
    lines, hashes = [], []
    for i, ev in enumerate(events):
        seq = first + i
        if ev in ("d", "D"):
            m = decision(seq, ev == "d")
        elif ev.startswith("start"):  # "start" (after "new") or "start:AFTER"
            m = members(seq, "start", [("chain", "hmac-sha256" if key else "sha256"),
                                       ("after", ev.partition(":")[2] or "new")])
        else:
            m = members(seq, ev)
        line, prev = seal(m, prev, key)
        lines.append(line)
        hashes.append(prev)
    return lines, hashes


def rehash_from(lines, i, key=None):
    """A forger's repair: recompute hash and prev from line i on (needs the key for HMAC)."""
    prev = json.loads(lines[i - 1])["hash"] if i > 0 else GENESIS
    out = lines[:i]
    for line in lines[i:]:
        obj = json.loads(line)
        del obj["hash"]
        obj["prev"] = prev
        new, prev = seal(list(obj.items()), prev, key)
        out.append(new)
    return out


CASES = {}


def case(fn):
    CASES[fn.__name__.replace("_", "-")] = fn
    return fn


LOG = ["start", "d", "d", "D", "d", "d", "d", "stop"]  # seq 1..8


def ok_summary(files, first, last, last_hash, notes=()):
    out = ["%s: OK (%d records)" % f for f in files]
    out.append("chain OK: seq %d..%d, last hash %s" % (first, last, last_hash))
    return out + list(notes)


LIVE_NOTE = ("note: the last record is not a stop record: the log is live or its writer stopped "
             "uncleanly; only a checkpoint (--checkpoint) detects a cut tail")


@case
def good():
    lines, h = chain(1, LOG)
    return {"audit.log": lines}, ["audit.log"], 0, ok_summary([("audit.log", 8)], 1, 8, h[-1])


@case
def good_rotated():
    a, ha = chain(1, ["start", "d", "d", "rotate"])
    b, hb = chain(5, ["d", "D", "rotate"], prev=ha[-1])
    c, hc = chain(8, ["d", "d"], prev=hb[-1])
    files = {"audit.log.2": a, "audit.log.1": b, "audit.log": c}
    out = ok_summary([("audit.log.2", 4), ("audit.log.1", 3), ("audit.log", 2)], 1, 9, hc[-1],
                     [LIVE_NOTE])
    return files, ["audit.log", "audit.log.2", "audit.log.1"], 0, out


@case
def good_hmac():
    lines, h = chain(1, LOG, KEY)
    return ({"audit.log": lines, "key": [KEY + b"\n"]}, ["--hmac-key", "key", "audit.log"], 0,
            ok_summary([("audit.log", 8)], 1, 8, h[-1]))


@case
def good_history_rotated_away():
    lines, h = chain(50, ["d", "d", "stop"], prev="ab" * 32)
    notes = ["note: the chain starts at seq 50; earlier records are in files not given (or "
             "rotated away)"]
    return {"audit.log.9": lines}, ["audit.log.9"], 0, ok_summary([("audit.log.9", 3)], 50, 52,
                                                                  h[-1], notes)


@case
def edited():
    lines, _ = chain(1, LOG)
    lines[3] = lines[3].replace(b'"decision":"deny"', b'"decision":"allow"')
    return {"audit.log": lines}, ["audit.log"], 1, [
        "audit.log:4: hash mismatch: the record was modified (or the log is HMAC-chained: pass "
        "--hmac-key)"]


@case
def edited_rehashed():
    lines, _ = chain(1, LOG)
    obj = json.loads(lines[3])
    obj["decision"] = "allow"
    del obj["hash"]
    lines[3], _ = seal([(k, v) for k, v in obj.items() if k != "prev"], obj["prev"], None)
    return {"audit.log": lines}, ["audit.log"], 1, [
        "audit.log:5: prev does not match the hash of seq 4 (audit.log:4): the chain is broken"]


@case
def edited_chain_recomputed():
    """Without a key or a checkpoint a forger who recomputes the chain is not detected."""
    lines, h = chain(1, LOG)
    lines[3] = lines[3].replace(b'"decision":"deny"', b'"decision":"allow"')
    lines = rehash_from(lines, 3)
    return {"audit.log": lines}, ["--checkpoint", "6:" + h[5], "audit.log"], 1, [
        "audit.log:6: seq 6 has hash %s but the checkpoint says %s"
        % (json.loads(lines[5])["hash"], h[5])]


@case
def deleted():
    lines, _ = chain(1, LOG)
    del lines[3]
    return {"audit.log": lines}, ["audit.log"], 1, [
        "audit.log:4: seq 5 where 4 was expected: records were deleted, inserted or reordered"]


@case
def deleted_head():
    lines, _ = chain(1, LOG)
    del lines[0]
    return {"audit.log": lines}, ["--checkpoint", "1", "audit.log"], 1, [
        "audit.log: OK (7 records)",
        "checkpoint 1: not in the files given (they hold seq 2..8): records are missing"]


@case
def inserted():
    lines, h = chain(1, LOG)
    forged, _ = seal(decision(4), h[2], None)
    lines.insert(3, forged)
    return {"audit.log": lines}, ["audit.log"], 1, [
        "audit.log:5: seq 4 where 5 was expected: records were deleted, inserted or reordered"]


@case
def reordered():
    lines, _ = chain(1, LOG)
    lines[3], lines[4] = lines[4], lines[3]
    return {"audit.log": lines}, ["audit.log"], 1, [
        "audit.log:4: seq 5 where 4 was expected: records were deleted, inserted or reordered"]


@case
def truncated_mid_record():
    lines, _ = chain(1, LOG)
    lines[-1] = lines[-1][:40]
    return {"audit.log": lines}, ["audit.log"], 1, [
        "audit.log:8: incomplete record without a newline: the file was truncated"]


@case
def truncated_rotated_file():
    a, ha = chain(1, ["start", "d", "d", "D", "rotate"])
    b, _ = chain(6, ["d", "d"], prev=ha[-1])
    return {"audit.log.1": a[:3], "audit.log": b}, ["audit.log.1", "audit.log"], 1, [
        "audit.log.1:3: the file ends at seq 3 without a rotate record: its tail was truncated"]


@case
def good_reopened():
    """SIGHUP or a rename: the old file ends without a rotate record, the new one begins with a
    start after "reopen" chained to the old file's last record."""
    a, ha = chain(1, ["start", "d", "D"])
    b, hb = chain(4, ["start:reopen", "d", "rotate"], prev=ha[-1])
    c, hc = chain(7, ["start:reopen", "d", "stop"], prev=hb[-1])
    files = {"audit.log.0": a, "audit.log.1": b, "audit.log": c}
    out = ok_summary([("audit.log.0", 3), ("audit.log.1", 3), ("audit.log", 3)], 1, 9, hc[-1])
    return files, ["audit.log", "audit.log.0", "audit.log.1", "--sealed"], 0, out


@case
def truncated_reopened_file():
    """The reopened file's start names a record the old file no longer holds."""
    a, ha = chain(1, ["start", "d", "D", "d"])
    b, _ = chain(5, ["start:reopen", "d", "stop"], prev=ha[-1])
    return {"audit.log.0": a[:3], "audit.log": b}, ["audit.log.0", "audit.log"], 1, [
        "audit.log.0:3: the file ends at seq 3 without a rotate record, and audit.log begins with "
        "a reopen start at seq 5 where 4 was expected: records are missing (the tail of "
        "audit.log.0 was truncated, or a file between them was not given)"]


@case
def reopen_prev_unlinked():
    """A reopen start whose seq follows but whose prev is not the old file's last hash."""
    a, _ = chain(1, ["start", "d", "D"])
    b, _ = chain(4, ["start:reopen", "d", "stop"], prev="ab" * 32)
    return {"audit.log.0": a, "audit.log": b}, ["audit.log.0", "audit.log"], 1, [
        "audit.log.0:3: the file ends at seq 3 without a rotate record, and the prev of the "
        "reopen start that audit.log begins with is not its hash: the tail of audit.log.0 was "
        "changed or the files are of different logs"]


@case
def unclean_start_after_unrotated_file():
    """Only a reopen continues a file that was not rotated: a start after "unclean" that links
    is still a file whose tail is not known to be whole."""
    a, ha = chain(1, ["start", "d", "D"])
    b, _ = chain(4, ["start:unclean", "d", "stop"], prev=ha[-1])
    return {"audit.log.0": a, "audit.log": b}, ["audit.log.0", "audit.log"], 1, [
        "audit.log.0:3: the file ends at seq 3 without a rotate record: its tail was truncated "
        "(audit.log begins with a start after \"unclean\": only a start after \"reopen\" "
        "continues a file without one)"]


@case
def truncated_tail_checkpoint():
    lines, h = chain(1, LOG)
    return {"audit.log": lines[:5]}, ["--checkpoint", "8:" + h[7], "audit.log"], 1, [
        "audit.log: OK (5 records)",
        "checkpoint 8: not in the files given (they hold seq 1..5): records are missing"]


@case
def truncated_tail_sealed():
    lines, _ = chain(1, LOG)
    return {"audit.log": lines[:5]}, ["--sealed", "audit.log"], 1, [
        "audit.log: OK (5 records)",
        "audit.log:5: the log ends at seq 5 without a stop or rotate record: its tail was "
        "truncated or its writer stopped uncleanly"]


@case
def missing_rotated_file():
    a, ha = chain(1, ["start", "d", "rotate"])
    b, hb = chain(4, ["d", "d", "rotate"], prev=ha[-1])
    c, _ = chain(7, ["d", "stop"], prev=hb[-1])
    return {"audit.log.2": a, "audit.log": c}, ["audit.log.2", "audit.log"], 1, [
        "audit.log.2: OK (3 records)",
        "audit.log:1: seq 7 where 4 was expected: records were deleted, inserted or reordered"]


@case
def missing_hash():
    lines, _ = chain(1, LOG)
    lines[2] = lines[2][:lines[2].rindex(b',"hash"')] + b"}\n"
    return {"audit.log": lines}, ["audit.log"], 1, [
        "audit.log:3: record does not end with a \"hash\" member of 64 hex digits"]


@case
def hmac_forged_without_key():
    lines, _ = chain(1, LOG, KEY)
    lines[3] = lines[3].replace(b'"decision":"deny"', b'"decision":"allow"')
    lines = rehash_from(lines, 3)  # the forger has no key: plain SHA-256
    return {"audit.log": lines, "key": [KEY]}, ["--hmac-key", "key", "audit.log"], 1, [
        "audit.log:4: hash mismatch: the record was modified (or the HMAC key is wrong)"]


@case
def hmac_no_key_given():
    lines, _ = chain(1, LOG, KEY)
    return {"audit.log": lines}, ["audit.log"], 1, [
        "audit.log:1: hash mismatch: the record was modified (or the log is HMAC-chained: pass "
        "--hmac-key)"]


@case
def hmac_wrong_key():
    lines, _ = chain(1, LOG, KEY)
    return ({"audit.log": lines, "key": [b"another-key-0123456789abcdef"]},
            ["--hmac-key", "key", "audit.log"], 1,
            ["audit.log:1: hash mismatch: the record was modified (or the HMAC key is wrong)"])


def main():
    for name in sorted(os.listdir(HERE)):
        if os.path.isdir(os.path.join(HERE, name)):
            shutil.rmtree(os.path.join(HERE, name))
    for name, fn in CASES.items():
        files, args, status, stdout = fn()
        d = os.path.join(HERE, name)
        os.makedirs(d)
        for fname, lines in files.items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(b"".join(lines))
        with open(os.path.join(d, "args"), "w") as f:
            f.write("\n".join(args) + "\n")
        with open(os.path.join(d, "stdout"), "w") as f:
            f.write("\n".join(stdout) + "\n")
        with open(os.path.join(d, "status"), "w") as f:
            f.write("%d\n" % status)
    print("wrote %d cases" % len(CASES), file=sys.stderr)


if __name__ == "__main__":
    main()

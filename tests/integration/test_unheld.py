# SPDX-License-Identifier: Apache-2.0
"""A review the server cannot hold (no room under --body-memory before its wait for room ends)
is read through, keeping only its first bytes, and still answered 200 with its uid: denied
saying why for objects the webhook guards, allowed with a warning otherwise, recorded in the
audit log and counted. Bytes that are not a review keep their 400; the server keeps serving."""

import json
import subprocess
import time

import pytest

from conftest import application, check_envelope, decode_patch, review, table
from test_hostile import metric, read_response, still_serves, tls_socket

CAP = 1 << 20


def go_json(obj):
    """JSON as the API server's Go encoder writes it: compact, <, > and & escaped."""
    text = json.dumps(obj, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def as_kind(rev, group, version, kind, resource):
    """The review retargeted at another kind, request.kind and resource as the API server sets."""
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    r = rev["request"]
    r["kind"], r["resource"], r["requestKind"], r["requestResource"] = gvk, gvr, gvk, gvr
    return rev


def large_application(size, name="orders", namespace="shop"):
    """An Application of about `size` bytes whose tables lack protection (a guarded object)."""
    n = max(1, size // 110)
    return application([table(f"t{i}", f"tbl-{i}-prod") for i in range(n)], name=name,
                       namespace=namespace)


def large_table(size):
    """An ACK Table with a large free-form field (tags), as the API server stores it."""
    return {"apiVersion": "dynamodb.services.k8s.aws/v1alpha1", "kind": "Table",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"tableName": "orders-prod",
                     "tags": [{"key": f"k{i}", "value": "<>&" * 10} for i in range(size // 80)]}}


class Holder:
    """A client that holds the whole body budget: headers for a body at the cap, then a few
    bytes of it, then nothing."""

    def __init__(self, server, size=CAP):
        self.sock = tls_socket(server, timeout=60)
        self.sock.sendall(b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{" % size)
        deadline = time.monotonic() + 10
        while metric(server, "tableguard_http_request_body_bytes") < size:
            assert time.monotonic() < deadline, "the holder never got its room"
            time.sleep(0.05)

    def close(self):
        self.sock.close()


def post(server, hook, body, timeout="2s"):
    """POSTs a body as the API server does; returns (status, parsed answer, seconds)."""
    query = f"?timeout={timeout}" if timeout else ""
    t0 = time.monotonic()
    status, data = server.request("POST", f"/{hook}{query}", body)
    return status, json.loads(data), time.monotonic() - t0


@pytest.fixture
def held(start_server):
    """A server whose whole body budget a client holds; after the test it still serves."""
    server = start_server(max_body=CAP, body_memory=CAP, request_timeout=60)
    holder = Holder(server)
    yield server
    holder.close()
    still_serves(server)


def answered(server, hook, rev):
    """Sends a review as the API server writes it; asserts a 200 with its uid, returns it."""
    status, answer, _ = post(server, hook, go_json(rev))
    assert status == 200, answer
    check_envelope(answer, rev)
    return answer


def not_held(server, hook, decision):
    _, text = server.plain("/metrics")
    for line in text.splitlines():
        if line.startswith(f'tableguard_http_bodies_not_held_total{{webhook="{hook}",'
                           f'decision="{decision}"}}'):
            return int(line.split()[1])
    raise AssertionError("tableguard_http_bodies_not_held_total missing:\n" + text)


def test_guarded_application_is_denied_with_its_uid_when_it_cannot_be_held(held):
    server, sent = held, {}
    for hook in ("mutate", "validate"):
        rev = review(large_application(300_000))
        body = go_json(rev)
        assert 200_000 < len(body) < CAP
        status, answer, took = post(server, hook, body)
        assert status == 200, answer
        check_envelope(answer, rev)
        sent[rev["request"]["uid"]] = len(body)
        r = answer["response"]
        assert r["allowed"] is False and r["status"]["code"] == 403
        msg = r["status"]["message"]
        assert f'tableguard cannot judge Application "orders" faithfully: its body of ' \
               f'{len(body)} bytes could not be held: --body-memory ({CAP} bytes) was in use' in msg
        assert decode_patch(answer) == []
        # It waited half the ?timeout= (1 s) for room, then was read through.
        assert 0.9 < took < 10
        assert not_held(server, hook, "deny") == 1
    # Nothing is lost from the audit log: each has its record, saying why.
    recs = [r for r in server.audit_records() if "notHeld" in r]
    assert sorted(r["uid"] for r in recs) == sorted(sent)
    for rec in recs:
        assert rec["notHeld"]["bytes"] == sent[rec["uid"]]
        assert rec["decision"] == "deny" and rec["code"] == 403
        assert rec["skipped"] == "unreadable"
        assert rec["resource"]["resource"] == "applications"
        assert rec["resource"]["name"] == "orders" and rec["resource"]["namespace"] == "shop"
        assert "--body-memory" in rec["notHeld"]["reason"]
    # The budget was never exceeded, and the holder still holds it.
    assert metric(server, "tableguard_http_request_body_bytes") == CAP


def test_guarded_table_and_delete_are_denied(held):
    table_rev = as_kind(review(large_table(300_000)), "dynamodb.services.k8s.aws", "v1alpha1",
                        "Table", "tables")
    r = answered(held, "validate", table_rev)["response"]
    assert r["allowed"] is False
    assert 'cannot judge Table "orders" faithfully' in r["status"]["message"]
    # A DELETE carries the object in oldObject (object null): still the guarded kind.
    gone = review(None, operation="DELETE", old=large_application(300_000), namespace="shop")
    r = answered(held, "validate", gone)["response"]
    assert r["allowed"] is False and "could not be held" in r["status"]["message"]


def test_unguarded_or_excluded_review_is_allowed_with_a_warning(held):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "namespace": "shop"},
          "data": {"blob": "x" * 300_000}}
    rev = as_kind(review(cm), "", "v1", "ConfigMap", "configmaps")
    excluded = review(large_application(300_000, namespace="kube-system"))
    for rv in (rev, excluded):
        answer = answered(held, "mutate", rv)
        r = answer["response"]
        assert r["allowed"] is True and decode_patch(answer) == []
        assert any("could not hold this review's" in w for w in r["warnings"]), r
    assert not_held(held, "mutate", "allow") == 2


def test_not_a_review_keeps_its_400_and_nul_in_uid_stays_400(held):
    status, answer, _ = post(held, "validate", b"x" * 300_000)
    assert status == 400 and "not an AdmissionReview" in answer["error"]
    rev = review(large_application(300_000), uid="abc\u0000def")
    status, answer, _ = post(held, "validate", go_json(rev))
    assert status == 400 and "request.uid" in answer["error"], answer
    assert not_held(held, "validate", "invalid") == 2


def test_small_review_that_waited_too_long_is_judged_whole(held):
    # A body within the bytes kept of one read through is judged as usual.
    answer = answered(held, "mutate", review(application([table("orders", "orders-prod")])))
    assert answer["response"]["allowed"] is True and decode_patch(answer)
    assert not_held(held, "mutate", "patch") == 1


def test_room_within_the_wait_is_taken_as_before(start_server):
    server = start_server(max_body=CAP, body_memory=CAP, request_timeout=60)
    holder = Holder(server)
    rev = review(large_application(300_000))
    body = go_json(rev)
    s = tls_socket(server, timeout=30)
    s.sendall(b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    deadline = time.monotonic() + 10
    while metric(server, "tableguard_http_requests_waiting") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    holder.close()  # room frees well within the wait (5 s): the body is held and judged
    s.sendall(body)
    status, _, data = read_response(s)
    s.close()
    answer = json.loads(data)
    assert status == 200
    check_envelope(answer, rev)
    assert answer["response"]["allowed"] is False
    assert "could not be held" not in answer["response"]["status"]["message"]
    assert not_held(server, "validate", "deny") == 0


def test_without_a_timeout_the_wait_is_half_the_request_timeout(start_server):
    server = start_server(max_body=CAP, body_memory=CAP, request_timeout=4)
    holder = Holder(server)
    rev = review(large_application(300_000))
    status, answer, took = post(server, "validate", go_json(rev), timeout=None)
    assert status == 200
    check_envelope(answer, rev)
    r = answer["response"]
    assert r["allowed"] is False and "could not be held" in r["status"]["message"]
    assert 1.9 < took < 8
    holder.close()


def test_a_cap_below_the_api_servers_largest_review_is_warned_about(start_server):
    low = start_server(max_body=CAP)
    lines = [l for l in low.log_lines() if "--max-body is below" in l.get("msg", "")]
    assert len(lines) == 1 and lines[0]["max_body"] == str(CAP)
    assert lines[0]["largest_review"] == "38797312"
    default = start_server()
    assert not [l for l in default.log_lines() if "--max-body is below" in l.get("msg", "")]


def test_hostile_corpus_under_a_held_budget(start_server):
    """Every hostile case while the budget is held: a body within the bytes kept gets the answer
    it gets with room; a larger one gets 200 with its uid (denied, or allowed with the warning)
    or, when its first bytes are not a review, 400. Never another status."""
    from test_hostile import load_cases
    from concurrent.futures import ThreadPoolExecutor
    cap = 37 << 20
    server = start_server(max_body=cap, body_memory=cap, request_timeout=60, audit=False)
    holder = Holder(server, size=cap)
    jobs = [(c, hook) for c in load_cases() for hook in c[1]]

    def one(job):
        (name, _, status, allowed, patch, _, body), hook = job
        got, data = server.request("POST", f"/{hook}?timeout=1s", body)
        return name, hook, status, allowed, patch, body, got, json.loads(data)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, jobs))
    unheld = 0
    for name, hook, status, allowed, patch, body, got, answer in results:
        where = f"{name} /{hook}: {got} {json.dumps(answer)[:300]}"
        if len(body) <= 64 * 1024:
            assert got == status, where
            if got == 200:
                assert answer["response"]["allowed"] is (allowed == "true"), where
                assert bool(decode_patch(answer)) is (patch == "yes"), where
            continue
        unheld += 1
        assert got in (200, 400), where
        if got == 400:
            assert "not an AdmissionReview" in answer["error"], where
            continue
        r = answer["response"]
        assert r["allowed"] is False or any("could not hold" in w for w in r["warnings"]), where
        if status == 200 and allowed == "false":
            assert r["allowed"] is False, where
        try:
            assert r["uid"] == json.loads(body)["request"]["uid"], where
        except (ValueError, KeyError, TypeError, RecursionError):
            pass  # a body Python does not read as a review
    assert unheld >= 10
    holder.close()
    still_serves(server)


def test_api_server_client_gets_every_call_answered_while_the_budget_is_held(
        start_server, webhookclient, tmp_path):
    """A client like the API server's (Go net/http, the webhook's 2 s timeout on each call, no
    retry of a POST) sends large guarded reviews back to back while another client holds the
    whole budget: every call is answered 200 with its uid (denied, read through) in time. Before
    the wait for room had an end, every call waited for the holder and failed at its timeout."""
    server = start_server(max_body=CAP, body_memory=CAP, request_timeout=60, audit=False)
    holder = Holder(server)
    rev = review(large_application(300_000))
    path = tmp_path / "review.json"
    path.write_bytes(go_json(rev))
    load = subprocess.Popen([str(webhookclient), "-mode", "load", "-workers", "8",
                             "-url", f"https://127.0.0.1:{server.port}/validate?timeout=2s",
                             "-ca", str(server.ca), "-body", str(path),
                             "-uid", rev["request"]["uid"], "-idle", "90s",
                             "-timeout", "2s"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    time.sleep(3)
    out, _ = load.communicate("", timeout=60)
    o = json.loads(out)
    assert o["sent"] >= 8 and o["ok"] == o["sent"], o
    assert o["failed"] == 0 and o["refused"] == 0, o
    assert not_held(server, "validate", "deny") == o["sent"]
    assert metric(server, "tableguard_http_request_body_bytes") == CAP  # the holder's, only
    holder.close()
    still_serves(server)

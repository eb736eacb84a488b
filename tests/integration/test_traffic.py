# SPDX-License-Identifier: Apache-2.0
"""The API server's real traffic, as its webhook client sends it: every review it can forward is
answered 200 with its uid (a NUL in a string, nesting past cJSON's 1000 levels, the largest body
it sends), a CREATE that carries deletionTimestamp is judged, and auditAnnotations do not change
when /mutate is called again for the same object."""

import json
import sys

import jsonpatch

from conftest import application, check_envelope, decode_patch, protection, review, table

sys.setrecursionlimit(20000)  # reviews nested 5000 deep are parsed here too

STAMP = "2026-01-01T00:00:00Z"


def test_create_with_deletion_timestamp_is_judged(start_server):
    server = start_server()
    app = application([table("orders", "orders-prod")], deletionTimestamp=STAMP)
    # CREATE: the API server clears deletionTimestamp after the mutating webhooks, so a skipped
    # CREATE would be stored without the trait.
    rev = review(app)
    status, resp = server.admit("mutate", rev)
    assert status == 200
    check_envelope(resp, rev)
    ops = decode_patch(resp)
    assert ops, "a CREATE with deletionTimestamp must be patched"
    patched = jsonpatch.apply_patch(app, ops)
    assert patched["spec"]["components"][0]["traits"][0]["type"] == "dynamodb-protection-kro"
    status, resp = server.admit("validate", rev)
    assert status == 200 and resp["response"]["allowed"] is False
    assert "orders-prod" in resp["response"]["status"]["message"]
    # UPDATE of an object being deleted: finalizers must run, so it passes untouched.
    upd = review(app, operation="UPDATE", old=application([table("orders", "orders-prod")]))
    for hook in ("mutate", "validate"):
        status, resp = server.admit(hook, upd)
        assert status == 200 and resp["response"]["allowed"] is True
        assert decode_patch(resp) == []
    skipped = {r["operation"]: r.get("skipped") for r in server.audit_records()
               if r.get("event") == "decision"}
    assert skipped == {"CREATE": None, "UPDATE": "deleting"}


def deny_message(server, hook, body_or_review):
    """Sends a review (a dict, or bytes exactly as the API server sends them) and returns the
    denial's message after checking the envelope."""
    body = body_or_review if isinstance(body_or_review, bytes) else \
        json.dumps(body_or_review).encode()
    status, data = server.request("POST", f"/{hook}?timeout=10s", body)
    assert status == 200, data[:300]
    resp = json.loads(data)
    check_envelope(resp, json.loads(body))
    r = resp["response"]
    assert "patch" not in r and "patchType" not in r
    assert r["allowed"] is False, r
    assert r["status"]["code"] == 403
    msg = r["status"]["message"]
    assert all(ord(c) >= 0x20 for c in msg)
    assert r["auditAnnotations"]["decision"] == "deny"
    assert r["auditAnnotations"]["request-uid"] == json.loads(body)["request"]["uid"]
    return msg


def test_escaped_nul_is_denied_saying_where(start_server):
    server = start_server()
    # The API server's encoder writes a NUL as \u0000; Python's does the same.
    rev = review(application([table("orders", "orders\u0000-prod")]))
    for hook in ("mutate", "validate"):
        msg = deny_message(server, hook, rev)
        assert 'cannot judge Application "orders" faithfully' in msg
        assert ("request.object.spec.components[0].properties.tableName holds an escaped NUL "
                "character (\\u0000)") in msg
    # In a property key, with two keys that differ only after the NUL.
    comp = table("orders", "orders-dev")
    comp["properties"].update({"tag\u0000a": 1, "tag\u0000b": 2})
    msg = deny_message(server, "validate", review(application([comp])))
    assert "request.object.spec.components[0].properties.tag\\u0000a holds" in msg
    # In the username, which the exclusions read.
    msg = deny_message(server, "mutate", review(application([table("orders", "orders-dev")]),
                                                username="alice\u0000admin"))
    assert "request.userInfo.username holds" in msg
    # An object the webhook does not guard is allowed.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a\u0000b"}}
    status, resp = server.admit("validate", review(cm))
    assert status == 200 and resp["response"]["allowed"] is True
    recs = [r for r in server.audit_records() if r.get("event") == "decision"]
    assert [r["skipped"] for r in recs if r["decision"] == "deny"] == ["unreadable"] * 4
    assert [r["code"] for r in recs if r["decision"] == "deny"] == [403] * 4


def nested(depth):
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_nesting_past_cjson_is_denied_saying_why(start_server):
    server = start_server()
    rev = review(application([table("orders", "orders-dev", config={"x": None})]))
    base = json.dumps(rev, separators=(",", ":")).encode()
    for depth in (1000, 5000, 9990):
        body = base.replace(b'"x":null', b'"x":' + nested(depth))
        for hook in ("mutate", "validate"):
            msg = deny_message(server, hook, body)
            assert "nests deeper than the 1000 levels" in msg, msg
    # Shallower is judged as usual (here: allowed, the table is not production).
    body = base.replace(b'"x":null', b'"x":' + nested(900))
    status, data = server.request("POST", "/validate?timeout=10s", body)
    assert status == 200 and json.loads(data)["response"]["allowed"] is True
    # Deeper than the API server's decoder reads is not a review it sends.
    status, data = server.request("POST", "/validate?timeout=10s",
                                  base.replace(b'"x":null', b'"x":' + nested(10001)))
    assert status == 400 and "nests" in json.loads(data)["error"]


def escaped(text):
    """JSON text as the API server's Go encoder writes it: <, > and & as six bytes."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def test_the_api_servers_largest_review_is_answered(start_server):
    """An UPDATE with object and oldObject of 3 MiB each, every byte of which the API server
    escapes into six: 36 MiB on the wire, under the default cap of 37 MiB."""
    server = start_server(audit=False)
    old = application([table("orders", "orders-prod", traits=[
        protection(deletionProtection=True, pointInTimeRecovery=True)])])
    new = application([table("orders", "orders-prod")])
    for obj in (old, new):
        obj["metadata"]["annotations"] = {"note": ""}
        room = (3 << 20) - len(json.dumps(obj, separators=(",", ":")))
        obj["metadata"]["annotations"]["note"] = "<>&" * (room // 3)
        assert (3 << 20) - 3 < len(json.dumps(obj, separators=(",", ":"))) <= 3 << 20
    rev = review(new, operation="UPDATE", old=old)
    body = escaped(json.dumps(rev, separators=(",", ":"))).encode()
    assert len(body) > 35 << 20  # more than four times the old 8 MiB cap
    for hook, allowed in (("mutate", True), ("validate", False)):
        status, data = server.request("POST", f"/{hook}?timeout=10s", body)
        assert status == 200, data[:300]
        resp = json.loads(data)
        check_envelope(resp, rev)
        assert resp["response"]["allowed"] is allowed
        if hook == "mutate":
            assert decode_patch(resp)


def test_audit_annotations_are_stable_across_reinvocation(start_server):
    server = start_server()
    app = application([table("orders", "orders-prod"), table("carts", "carts-dev")])
    rev = review(app)
    status, first = server.admit("mutate", rev)
    ops = decode_patch(first)
    assert ops
    ann1 = first["response"]["auditAnnotations"]
    assert ann1 == {"decision": "allow", "patched": "true", "request-uid": rev["request"]["uid"]}
    # Reinvocation: the patched object, maybe changed by another webhook, under a new uid.
    again = review(jsonpatch.apply_patch(app, ops))
    again["request"]["object"]["metadata"]["labels"] = {"added-by": "another-webhook"}
    assert again["request"]["uid"] != rev["request"]["uid"]
    status, second = server.admit("mutate", again)
    assert decode_patch(second) == []
    ann2 = second["response"]["auditAnnotations"]
    # The API server keeps the first value of a key and warns at every other one.
    assert all(ann1[k] == v for k, v in ann2.items() if k in ann1), (ann1, ann2)
    # The audit log still links both calls by uid.
    uids = [r["uid"] for r in server.audit_records() if r.get("event") == "decision"]
    assert uids == [rev["request"]["uid"], again["request"]["uid"]]
    # /validate is called once per request: it always carries the link.
    status, resp = server.admit("validate", again)
    assert resp["response"]["auditAnnotations"]["request-uid"] == again["request"]["uid"]

# SPDX-License-Identifier: Apache-2.0
"""The Kubernetes wire contract (DESIGN section 4) and the mutate/validate semantics, checked the
way the API server checks answers, against the real server over TLS. Mutated objects are checked
against KubeVela's Application CRD and the real example Applications when ../shared exists."""

import base64
import json
import pathlib
import socket
import ssl

import jsonpatch
import pytest
import yaml

from conftest import (SHARED, application, check_envelope, decode_patch, protection, review,
                      table)

KUBEVELA = SHARED / "kubevela"
ADMISSION = SHARED / "admissionreview"


def mutate_then_validate(server, rv, conn=None):
    """What the API server does: mutate, apply the patch, then validate the result."""
    status, m = server.admit("mutate", rv, conn=conn)
    assert status == 200
    check_envelope(m, rv)
    ops = decode_patch(m)
    obj = rv["request"]["object"]
    mutated = jsonpatch.JsonPatch(ops).apply(obj) if ops else obj
    rv2 = json.loads(json.dumps(rv))
    rv2["request"]["object"] = mutated
    status, v = server.admit("validate", rv2, conn=conn)
    assert status == 200
    check_envelope(v, rv2)
    return ops, mutated, v["response"]


# ---- HTTP contract --------------------------------------------------------------------------


def test_malformed_bodies_get_400_and_the_server_keeps_serving(start_server):
    server = start_server()
    bad = [b"", b"not json", b"[]", b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
           json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                       "request": {"uid": "a", "operation": "CREATE"}}).encode(),
           json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"operation": "CREATE"}}).encode(),
           json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": 7, "operation": "CREATE"}}).encode(),
           b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a",'
           b'"uid":"b","operation":"CREATE"}}']
    for body in bad:
        status, data = server.request("POST", "/validate?timeout=10s", body)
        assert status == 400, body
        assert "error" in json.loads(data)
    rv = review(application([table("t", "orders-prod")]))
    status, body = server.admit("mutate", rv)
    assert status == 200 and decode_patch(body)


def test_wrong_method_405_unknown_path_404(start_server):
    server = start_server()
    status, _ = server.request("GET", "/mutate?timeout=10s")
    assert status == 405
    status, _ = server.request("PUT", "/validate", b"{}")
    assert status == 405
    status, _ = server.request("POST", "/nope", b"{}")
    assert status == 404
    assert server.request("GET", "/healthz")[0] == 200
    assert server.request("GET", "/readyz")[0] == 200
    assert server.plain("/healthz")[0] == 200
    assert server.plain("/readyz")[0] == 200


def test_body_over_the_cap_413(start_server):
    server = start_server(max_body=4096)
    status, _ = server.request("POST", "/mutate?timeout=10s", b"{" + b" " * 5000 + b"}")
    assert status == 413
    rv = review(application([table("t", "orders-prod")]))
    assert server.admit("mutate", rv)[0] == 200


def test_keep_alive_serves_many_requests_on_one_connection(start_server):
    server = start_server()
    conn = server.connect()
    for i in range(50):
        rv = review(application([table("t", f"t{i}-prod")]))
        status, body = server.admit("mutate" if i % 2 else "validate", rv, conn=conn)
        assert status == 200 and body["response"]["uid"] == rv["request"]["uid"]
    conn.close()


def test_tls_only_modern_versions(start_server):
    server = start_server()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(server.ca))
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1  # noqa: deprecated on purpose
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            ctx.wrap_socket(s, server_hostname="localhost")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=str(server.ca))
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                assert t.version() in ("TLSv1.2", "TLSv1.3")
                assert "GCM" in t.cipher()[0] or "CHACHA20" in t.cipher()[0]


# ---- response shape -------------------------------------------------------------------------


def test_patch_is_standard_base64_of_a_json_array(start_server):
    server = start_server()
    rv = review(application([table("t", "orders-prod")]))
    _, body = server.admit("mutate", rv)
    r = body["response"]
    assert r["patchType"] == "JSONPatch"
    raw = base64.b64decode(r["patch"], validate=True)
    assert isinstance(json.loads(raw), list)
    assert r["patch"].endswith("=") or len(r["patch"]) % 4 == 0


def test_no_patch_means_no_patch_type(start_server):
    server = start_server()
    rv = review(application([table("t", "orders-prod",
                                   traits=[protection(deletionProtection=True,
                                                      pointInTimeRecovery=True)])]))
    _, body = server.admit("mutate", rv)
    assert "patch" not in body["response"] and "patchType" not in body["response"]


def test_unknown_fields_and_key_order_are_ignored(start_server):
    server = start_server()
    rv = review(application([table("t", "orders-prod")]))
    rv["request"]["somethingNew"] = {"x": [1, 2]}
    rv["futureField"] = True
    # Reverse the key order everywhere.
    def rev(o):
        if isinstance(o, dict):
            return {k: rev(o[k]) for k in reversed(list(o))}
        if isinstance(o, list):
            return [rev(x) for x in o]
        return o
    rv = rev(rv)
    status, body = server.admit("mutate", rv)
    assert status == 200 and len(decode_patch(body)) == 1


def test_create_without_name_namespace_or_uid(start_server):
    server = start_server()
    app = application([table("t", "orders-prod")])
    del app["metadata"]["name"]
    app["metadata"]["generateName"] = "orders-"
    rv = review(app)
    del rv["request"]["name"]
    status, body = server.admit("mutate", rv)
    assert status == 200 and decode_patch(body)


def test_deny_message_is_one_line_and_names_the_fix(start_server):
    server = start_server()
    rv = review(application([
        table("orders-table", "orders-prod", traits=[protection(deletionProtection=False)]),
        table("users-table", "users-prod", traits=[protection(deletionProtection="false")])]))
    ops, _, resp = mutate_then_validate(server, rv)
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert "\n" not in msg and all(ord(c) >= 0x20 for c in msg)
    for expect in ("orders-prod", "users-prod", "orders-table", "users-table",
                   "prod-deletion-protection", "set deletionProtection: true",
                   "not a boolean", "shop/orders", "2 violations"):
        assert expect in msg
    assert resp["auditAnnotations"]["decision"] == "deny"
    assert "prod-deletion-protection" in resp["auditAnnotations"]["rules"]


def test_control_characters_never_reach_the_message(start_server):
    server = start_server()
    rv = review(application([table("t", "evil\n\x1b[31m-prod",
                                   traits=[protection(deletionProtection=False)])]))
    _, body = server.admit("validate", rv)
    msg = body["response"]["status"]["message"]
    assert all(ord(c) >= 0x20 for c in msg)


def test_long_warning_is_cut_under_120(start_server):
    server = start_server()
    rv = review(application([table("t", "x" * 300 + "-prod",
                                   traits=[protection(deletionProtection=True,
                                                      pointInTimeRecovery=False)])]))
    _, body = server.admit("validate", rv)
    [w] = body["response"]["warnings"]
    assert len(w.encode()) < 120 and w.endswith("...")


# ---- mutate semantics -----------------------------------------------------------------------


def test_mutation_is_idempotent_and_never_overrides(start_server):
    server = start_server()
    scaler = {"type": "scaler", "properties": {"replicas": 2}}
    rv = review(application([
        table("a", "a-prod"),
        table("b", "b-prod", traits=[scaler]),
        table("c", "c-prod", traits=[scaler, protection(pointInTimeRecovery=False)]),
        {"name": "web", "type": "webservice", "properties": {"image": "nginx"}}]))
    ops, mutated, resp = mutate_then_validate(server, rv)
    comps = mutated["spec"]["components"]
    assert comps[0]["traits"] == [protection(deletionProtection=True, pointInTimeRecovery=True)]
    assert comps[1]["traits"][0] == scaler and comps[1]["traits"][1]["type"] == \
        "dynamodb-protection-kro"
    assert comps[2]["traits"][0] == scaler
    assert comps[2]["traits"][1]["properties"] == {"pointInTimeRecovery": False,
                                                   "deletionProtection": True}
    assert "traits" not in comps[3]
    assert resp["allowed"] is True and len(resp["warnings"]) == 1
    rv2 = review(mutated, uid="second-pass")
    _, body = server.admit("mutate", rv2)
    assert decode_patch(body) == []


def test_pointer_tokens_are_escaped(start_server):
    server = start_server(policy="""apiVersion: tableguard.io/v1
kind: ProtectionPolicy
metadata: {name: odd}
spec:
  components: {types: ["aws/dynamodb~kro"]}
  rules: []
""")
    comp = {"name": "t", "type": "aws/dynamodb~kro", "properties": {}, "traits": []}
    rv = review(application([comp]))
    _, body = server.admit("mutate", rv)
    ops = decode_patch(body)
    assert ops[0]["path"] == "/spec/components/0/traits/-"
    mutated = jsonpatch.JsonPatch(ops).apply(rv["request"]["object"])
    assert mutated["spec"]["components"][0]["traits"][0]["type"] == "dynamodb-protection-kro"


def test_policy_defaults_are_injected(start_server):
    server = start_server(policy="""apiVersion: tableguard.io/v1
kind: ProtectionPolicy
metadata: {name: dev}
spec:
  trait:
    defaults: {deletionProtection: true, pointInTimeRecovery: false}
""")
    rv = review(application([table("t", "t-dev")]))
    _, body = server.admit("mutate", rv)
    [op] = decode_patch(body)
    assert op["value"][0]["properties"] == {"deletionProtection": True,
                                            "pointInTimeRecovery": False}


def test_excluded_user_and_group(start_server):
    server = start_server(policy="""apiVersion: tableguard.io/v1
kind: ProtectionPolicy
metadata: {name: ex}
spec:
  exclude:
    users: ["system:serviceaccount:ops:*"]
    groups: ["break-glass"]
  rules:
    - name: p
      tables: ["*-prod"]
      require: {deletionProtection: true}
""")
    app = application([table("t", "t-prod", traits=[protection(deletionProtection=False)])])
    for kw in ({"username": "system:serviceaccount:ops:migrator"},
               {"groups": ("system:authenticated", "break-glass")}):
        _, body = server.admit("validate", review(app, **kw))
        assert body["response"]["allowed"] is True
    _, body = server.admit("validate", review(app))
    assert body["response"]["allowed"] is False


def test_update_is_evaluated_and_dry_run_decides_the_same(start_server):
    server = start_server()
    old = application([table("t", "t-prod", traits=[protection(deletionProtection=True)])])
    new = application([table("t", "t-prod", traits=[protection(deletionProtection=False)])])
    for dry in (False, True):
        _, body = server.admit("validate", review(new, operation="UPDATE", old=old, dry_run=dry))
        assert body["response"]["allowed"] is False


# ---- reference artifacts --------------------------------------------------------------------


def crd_schema():
    crd = yaml.safe_load((KUBEVELA / "core.oam.dev_applications.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return version["schema"]["openAPIV3Schema"]


def reference_apps():
    out = []
    for f in sorted(KUBEVELA.glob("**/*.yaml")):
        if f.name.startswith("core.oam.dev"):
            continue
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Application":
                doc.setdefault("metadata", {}).setdefault("namespace", "default")
                out.append((f.name, doc))
    return out


@pytest.mark.skipif(not KUBEVELA.exists(), reason="../shared/reference not present")
def test_real_example_applications_mutate_into_valid_applications(start_server):
    import jsonschema
    schema = crd_schema()
    server = start_server()
    apps = reference_apps()
    assert apps, "no example Applications found"
    injected = 0
    for name, app in apps:
        rv = review(app)
        ops, mutated, resp = mutate_then_validate(server, rv)
        jsonschema.validate(mutated, schema)
        # Components other than tables keep their traits exactly.
        for before, after in zip(app["spec"]["components"], mutated["spec"]["components"]):
            if before["type"] != "aws-dynamodb-kro":
                assert before == after, name
            else:
                kinds = [t["type"] for t in after.get("traits", [])]
                assert kinds.count("dynamodb-protection-kro") == 1, name
                assert [t for t in after["traits"] if t["type"] != "dynamodb-protection-kro"] \
                    == [t for t in before.get("traits", [])
                        if t["type"] != "dynamodb-protection-kro"], name
                injected += bool(ops)
        _, body = server.admit("mutate", review(mutated))
        assert decode_patch(body) == [], name
    assert injected > 0


@pytest.mark.skipif(not ADMISSION.exists(), reason="../shared/reference not present")
def test_real_api_server_reviews_of_other_kinds_are_allowed_untouched(start_server):
    server = start_server()
    files = sorted(ADMISSION.glob("*.json"))
    assert files
    for f in files:
        rv = json.loads(f.read_text())
        for webhook in ("mutate", "validate"):
            status, body = server.admit(webhook, rv)
            assert status == 200, f.name
            check_envelope(body, rv)
            assert body["response"]["allowed"] is True
            assert "patch" not in body["response"]


def test_probes_and_errors_keep_the_connection_alive(start_server):
    """kubelet probes every few seconds; an answer that closes the connection costs a handshake."""
    server = start_server()
    conn = server.connect()
    for method, path, body, want in (("GET", "/healthz", None, 200), ("GET", "/readyz", None, 200),
                                     ("POST", "/nope", b"{}", 404),
                                     ("GET", "/mutate", None, 405),
                                     ("POST", "/validate", b"junk", 400)):
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == want, path
        assert (resp.getheader("Connection") or "").lower() != "close", path
    sock = conn.sock
    conn.request("GET", "/healthz")
    conn.getresponse().read()
    assert conn.sock is sock, "the same TLS connection served every request"
    conn.close()

# SPDX-License-Identifier: Apache-2.0
"""Guarded objects (spec.resources): the ACK Table and the kro DynamoDBTable through the real
server. A mutated object is allowed by /validate, and every mutated Table fits the ACK CRD's
openAPIV3Schema as the API server's structural validation reads it (python3-jsonschema, with
unknown fields refused as pruning would drop them). The CRD is read from ../shared/reference
when it is there (TABLEGUARD_REFERENCE names another copy); those checks skip otherwise."""

import copy
import json
import os
import pathlib

import jsonpatch
import jsonschema
import pytest
import yaml

from conftest import ROOT, SHARED, check_envelope, decode_patch

CASES = ROOT / "tests" / "cases" / "admission"
REFERENCE = pathlib.Path(os.environ.get("TABLEGUARD_REFERENCE", SHARED))
CRD = REFERENCE / "ack" / "dynamodb.services.k8s.aws_tables.yaml"
GUARDED = {"Table", "DynamoDBTable"}


def case_policy(name):
    """The case's own policy, or None for the shipped one (which guards both kinds)."""
    policy = CASES / name / "policy.yaml"
    return policy if policy.exists() else None


def case_reviews():
    out = []
    for d in sorted(CASES.iterdir()):
        req = d / "request.json"
        if not req.exists():
            continue
        review = json.loads(req.read_text())
        obj = review["request"].get("object") or review["request"].get("oldObject") or {}
        if obj.get("kind") in GUARDED:
            out.append((d.name, review))
    return out


CASE_REVIEWS = case_reviews()


def test_golden_cases_cover_both_kinds():
    kinds = {r["request"]["object"]["kind"] for _, r in CASE_REVIEWS if r["request"]["object"]}
    assert kinds == GUARDED


def structural(schema):
    """The CRD schema as the API server applies it: an object with properties takes no others
    (they would be pruned), unless it preserves unknown fields."""
    s = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.get("type") == "object" and "properties" in node and \
                not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for v in node.get("properties", {}).values():
            walk(v)
        walk(node.get("items"))
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])

    walk(s)
    # metadata is validated by the API server itself, not by the CRD schema.
    s["properties"]["metadata"] = {"type": "object"}
    return s


@pytest.fixture(scope="module")
def table_schema():
    if not CRD.exists():
        pytest.skip(f"{CRD} not present")
    crd = yaml.safe_load(CRD.read_text())
    version = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"][0]
    return structural(version["schema"]["openAPIV3Schema"])


def mutated(server, review, conn):
    status, body = server.admit("mutate", review, conn=conn)
    assert status == 200
    check_envelope(body, review)
    ops = decode_patch(body)
    obj = review["request"]["object"]
    return jsonpatch.JsonPatch(ops).apply(obj) if ops else copy.deepcopy(obj), ops


@pytest.mark.parametrize("name,review", CASE_REVIEWS, ids=[n for n, _ in CASE_REVIEWS])
def test_mutated_table_fits_the_ack_crd(name, review, start_server, table_schema):
    if not review["request"]["object"] or review["request"]["object"]["kind"] != "Table":
        pytest.skip("not a Table")
    server = start_server(policy=case_policy(name))
    conn = server.connect()
    obj, ops = mutated(server, review, conn)
    conn.close()
    if any(isinstance(v, str) for v in [obj["spec"].get("deletionProtectionEnabled")]):
        # A non-boolean the owner wrote is never overridden; the CRD refuses it as it should.
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(obj, table_schema)
        return
    if "tableName" not in obj["spec"]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(obj, table_schema)
        return
    jsonschema.validate(obj, table_schema)


def test_the_schema_check_catches_a_misplaced_field(table_schema):
    """pointInTimeRecoverySpecification is the Go type's name, not a CRD field: the check must
    refuse it, or it could not catch a wrong tableguard path either."""
    review = json.loads((CASES / "table-create-without-protection" / "request.json").read_text())
    obj = review["request"]["object"]
    jsonschema.validate(obj, table_schema)
    bad = copy.deepcopy(obj)
    bad["spec"]["pointInTimeRecoverySpecification"] = {"pointInTimeRecoveryEnabled": True}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, table_schema)
    bad = copy.deepcopy(obj)
    bad["spec"]["deletionProtectionEnabled"] = "true"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, table_schema)


@pytest.mark.parametrize("name", ["table-create-without-protection",
                                  "dynamodbtable-create-without-protection"])
def test_created_without_protection_is_mutated_then_allowed(name, start_server):
    review = json.loads((CASES / name / "request.json").read_text())
    server = start_server(policy=case_policy(name))
    conn = server.connect()
    status, body = server.admit("validate", review, conn=conn)
    assert body["response"]["allowed"] is False, "as sent, ACK would switch protection off"
    obj, ops = mutated(server, review, conn)
    assert ops, "absent protection fields are filled"
    again = copy.deepcopy(review)
    again["request"]["object"] = obj
    status, body = server.admit("validate", again, conn=conn)
    assert status == 200
    assert body["response"]["allowed"] is True
    assert "warnings" not in body["response"]
    conn.close()


def test_guarded_objects_are_audited_with_their_kind(start_server):
    name = "table-update-deletion-protection-off"
    review = json.loads((CASES / name / "request.json").read_text())
    server = start_server(policy=case_policy(name))
    status, body = server.admit("validate", review)
    assert body["response"]["allowed"] is False
    rec = [r for r in server.audit_records() if r.get("uid") == review["request"]["uid"]]
    assert len(rec) == 1
    assert rec[0]["decision"] == "deny"
    assert rec[0]["resource"]["resource"] == "tables"
    assert rec[0]["rules"][0]["component"] == "Table/orders-prod"
    assert rec[0]["rules"][0]["table"] == "orders-prod"


def test_unguarded_kind_is_allowed_untouched_and_counted(start_server):
    """A kind without a spec.resources row that reaches the webhook anyway passes untouched and
    is counted; a guarded kind and an Application are not counted."""
    from test_metrics import scrape, value
    server = start_server()
    conn = server.connect()
    other = json.loads((CASES / "unguarded-kind-untouched" / "request.json").read_text())
    guarded = json.loads((CASES / "table-update-deletion-protection-off" / "request.json").read_text())
    for webhook in ("mutate", "validate", "validate"):
        status, body = server.admit(webhook, other, conn=conn)
        assert status == 200 and body["response"]["allowed"] is True
        assert "patch" not in body["response"] and "warnings" not in body["response"]
    for webhook in ("mutate", "validate"):
        server.admit(webhook, guarded, conn=conn)
    conn.close()
    samples = scrape(server)
    assert value(samples, "tableguard_unguarded_requests_total", webhook="mutate") == 1
    assert value(samples, "tableguard_unguarded_requests_total", webhook="validate") == 2


def test_check_judges_guarded_kinds_beside_applications():
    """`tableguard check` runs each object of a mixed file through both webhooks at its layer."""
    import subprocess
    from conftest import BINARY, DEFAULT_POLICY, WRAPPER
    manifest = ROOT / "tests" / "policy" / "manifests" / "mixed-layers.yaml"
    r = subprocess.run([*WRAPPER, BINARY, "check", "--policy", str(DEFAULT_POLICY), "--output",
                        "json", str(manifest)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr  # the DynamoDBTable switches protection off
    out = json.loads(r.stdout)
    results = out["results"] if isinstance(out, dict) else out
    by_kind = {x["kind"]: x for x in results}
    assert set(by_kind) == {"Application", "Table", "DynamoDBTable"}
    assert by_kind["Application"]["allowed"] is True
    table = by_kind["Table"]
    assert table["allowed"] is True
    assert table["mutated"]["spec"]["deletionProtectionEnabled"] is True
    assert table["mutated"]["spec"]["continuousBackups"] == {"pointInTimeRecoveryEnabled": True}
    kro = by_kind["DynamoDBTable"]
    assert kro["allowed"] is False
    assert [x["name"] for x in kro["rules"]] == ["prod-deletion-protection"]
    assert kro["rules"][0]["component"] == "DynamoDBTable/orders-table"

# SPDX-License-Identifier: Apache-2.0
"""The chain, layer by layer: the reference's production Application (guidewire), rendered by
hand into the kro DynamoDBTable its aws-dynamodb-kro component produces and the ACK Table the
newest guidewire ResourceGraphDefinition produces from that (it maps neither protection field),
each sent through /mutate and /validate as the API server would. The reference files are read
from ../shared/reference (TABLEGUARD_REFERENCE names another copy); the test skips without them.
CHAIN_REPORT=FILE writes what each layer did as JSON."""

import copy
import json
import os
import pathlib

import jsonpatch
import jsonschema
import pytest
import yaml

from conftest import DEFAULT_POLICY, SHARED, check_envelope, decode_patch, review
from test_resources import structural

REFERENCE = pathlib.Path(os.environ.get("TABLEGUARD_REFERENCE", SHARED))
APP = REFERENCE / "kubevela" / "dynamodb-kro-guidewire" / "app-production.yaml"
RGD = REFERENCE / "ack" / "kro-rgd-dynamodbtable.guidewire-HEAD.yaml"
CRD = REFERENCE / "ack" / "dynamodb.services.k8s.aws_tables.yaml"
PREFIX = "tenant-atlantis-"  # the aws-dynamodb-kro component's table name prefix
RETAIN = "services.k8s.aws/deletion-policy"


def policy_for_the_reference(tmp_path):
    """The shipped policy (production tables are kept: prod-tables-are-kept), with the
    reference's naming (users-table-production-kro) counted as production."""
    text = DEFAULT_POLICY.read_text()
    assert "prod-tables-are-kept" in text
    text = text.replace('["*-prod"]', '["*-prod", "*-production-kro"]')
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


def kind_review(obj, operation="CREATE", old=None):
    """review() with the request's kind and resource taken from the object, as the API server
    fills them."""
    r = review(obj, operation=operation, old=old)
    subject = obj or old
    group, _, version = subject["apiVersion"].rpartition("/")
    resource = {"Application": "applications", "DynamoDBTable": "dynamodbtables",
                "Table": "tables"}[subject["kind"]]
    r["request"]["kind"] = r["request"]["requestKind"] = {
        "group": group, "version": version, "kind": subject["kind"]}
    r["request"]["resource"] = r["request"]["requestResource"] = {
        "group": group, "version": version, "resource": resource}
    return r


def through(server, conn, obj, operation="CREATE", old=None):
    """/mutate, the patch applied, /validate of the result: what the API server does."""
    rv = kind_review(obj, operation, old)
    status, body = server.admit("mutate", rv, conn=conn)
    assert status == 200
    check_envelope(body, rv)
    ops = decode_patch(body)
    mutated = jsonpatch.JsonPatch(ops).apply(obj) if ops and obj else copy.deepcopy(obj)
    again = kind_review(mutated, operation, old)
    status, body = server.admit("validate", again, conn=conn)
    assert status == 200
    assert "patch" not in body["response"]
    resp = body["response"]
    return {"patch": ops, "object": mutated, "allowed": resp["allowed"],
            "message": resp.get("status", {}).get("message"), "warnings": resp.get("warnings", [])}


def validate_only(server, conn, obj, operation="CREATE", old=None):
    rv = kind_review(obj, operation, old)
    status, body = server.admit("validate", rv, conn=conn)
    assert status == 200
    resp = body["response"]
    return {"allowed": resp["allowed"], "message": resp.get("status", {}).get("message")}


def render_dynamodbtable(app):
    """What the aws-dynamodb-kro component renders: a DynamoDBTable named after the component,
    tableName prefixed, and the protection trait's properties patched in."""
    comp = app["spec"]["components"][0]
    props = comp["properties"]
    trait = [t for t in comp.get("traits", []) if t["type"] == "dynamodb-protection-kro"]
    spec = {"tableName": PREFIX + props["tableName"], "region": props["region"],
            "billingMode": props.get("billingMode", "PAY_PER_REQUEST"),
            "attributeDefinitions": props["attributeDefinitions"], "keySchema": props["keySchema"]}
    if trait:
        p = trait[0].get("properties") or {}
        spec["deletionProtectionEnabled"] = p.get("deletionProtection", True)
        spec["pointInTimeRecoveryEnabled"] = p.get("pointInTimeRecovery", True)
    return {"apiVersion": "kro.run/v1alpha1", "kind": "DynamoDBTable",
            "metadata": {"name": comp["name"], "namespace": app["metadata"]["namespace"],
                         "labels": {"app.oam.dev/name": app["metadata"]["name"],
                                    "app.oam.dev/namespace": app["metadata"]["namespace"],
                                    "app.oam.dev/component": comp["name"]}},
            "spec": spec}


def render_table(rgd, instance):
    """The HEAD RGD's Table template with the instance's values: tableName, region, billingMode,
    attributeDefinitions and keySchema; the protection fields are not in the template."""
    tmpl = rgd["spec"]["resources"][0]["template"]
    spec = instance["spec"]
    subst = {"${schema.spec.%s}" % k: v for k, v in spec.items()}

    def fill(v):
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fill(x) for x in v]
        return subst.get(v, v) if isinstance(v, str) else v

    table = fill(copy.deepcopy(tmpl))
    table["metadata"]["namespace"] = instance["metadata"]["namespace"]
    table["metadata"]["labels"] = {"kro.run/instance-name": instance["metadata"]["name"],
                                   "app.kubernetes.io/managed-by": "kro"}
    return table


@pytest.fixture(scope="module")
def reference():
    for f in (APP, RGD, CRD):
        if not f.exists():
            pytest.skip(f"{f} not present")
    crd = yaml.safe_load(CRD.read_text())
    version = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"][0]
    return (yaml.safe_load(APP.read_text()), yaml.safe_load(RGD.read_text()),
            structural(version["schema"]["openAPIV3Schema"]))


def test_the_production_application_through_every_layer(reference, start_server, tmp_path):
    app, rgd, table_schema = reference
    server = start_server(policy=policy_for_the_reference(tmp_path))
    conn = server.connect()
    report = {}

    # Layer A: the Application. Its inline deletionProtectionEnabled is not a parameter of the
    # component: without the trait the table would be unprotected; /mutate injects it.
    a = through(server, conn, app)
    report["application"] = a
    assert a["allowed"] is True
    assert [op["path"] for op in a["patch"]] == ["/spec/components/0/traits"]
    assert a["patch"][0]["value"][0]["properties"] == {"deletionProtection": True,
                                                       "pointInTimeRecovery": True}

    # Layer B: the DynamoDBTable KubeVela renders from the mutated Application: the trait's
    # values are there, nothing to add, allowed.
    instance = render_dynamodbtable(a["object"])
    b = through(server, conn, instance)
    report["dynamodbtable"] = b
    assert b["allowed"] is True and b["patch"] == []
    assert instance["spec"]["tableName"] == "tenant-atlantis-users-table-production-kro"

    # Layer C: the Table the HEAD RGD renders: no protection field. As rendered, ACK would switch
    # both off; /validate alone denies it, /mutate fills both and retains the table.
    table = render_table(rgd, instance)
    assert "deletionProtectionEnabled" not in table["spec"]
    jsonschema.validate(table, table_schema)
    report["table_as_rendered"] = validate_only(server, conn, table)
    assert report["table_as_rendered"]["allowed"] is False
    assert "spec.deletionProtectionEnabled is absent" in report["table_as_rendered"]["message"]
    c = through(server, conn, table)
    report["table"] = c
    assert c["allowed"] is True and c["warnings"] == []
    assert c["object"]["spec"]["deletionProtectionEnabled"] is True
    assert c["object"]["spec"]["continuousBackups"] == {"pointInTimeRecoveryEnabled": True}
    assert c["object"]["metadata"]["annotations"][RETAIN] == "retain"
    assert c["object"]["metadata"]["annotations"]["services.k8s.aws/region"] == "us-west-2"
    jsonschema.validate(c["object"], table_schema)

    # The second lock: the retained Table may be deleted (ACK keeps the table); the DynamoDBTable
    # (kro would delete its Table) and the Application may not.
    report["table_delete"] = validate_only(server, conn, None, "DELETE", c["object"])
    assert report["table_delete"]["allowed"] is True
    report["dynamodbtable_delete"] = validate_only(server, conn, None, "DELETE", b["object"])
    assert report["dynamodbtable_delete"]["allowed"] is False
    report["application_delete"] = validate_only(server, conn, None, "DELETE", a["object"])
    assert report["application_delete"]["allowed"] is False
    # A kubectl edit that drops the annotation, or switches protection off, is denied.
    edited = copy.deepcopy(c["object"])
    del edited["metadata"]["annotations"][RETAIN]
    edited["spec"]["deletionProtectionEnabled"] = False
    report["table_edit"] = validate_only(server, conn, edited, "UPDATE", c["object"])
    assert report["table_edit"]["allowed"] is False
    assert "retain is removed" in report["table_edit"]["message"]
    assert "deletionProtectionEnabled is false" in report["table_edit"]["message"]
    conn.close()
    if os.environ.get("CHAIN_REPORT"):
        pathlib.Path(os.environ["CHAIN_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")


def test_the_shipped_policy_fills_the_reference_table_as_production_grade(reference, start_server):
    """Out of the box the reference's names match no profile: the table is treated as
    production-grade (both settings filled) but no rule covers it."""
    app, rgd, _ = reference
    server = start_server()
    conn = server.connect()
    a = through(server, conn, app)
    c = through(server, conn, render_table(rgd, render_dynamodbtable(a["object"])))
    assert c["allowed"] is True
    assert c["object"]["spec"]["deletionProtectionEnabled"] is True
    assert RETAIN not in c["object"]["metadata"].get("annotations", {})
    conn.close()

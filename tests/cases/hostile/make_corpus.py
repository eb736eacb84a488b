#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes the hostile-input corpus: request bodies no API server sends (or sends only at the edge
# of what is allowed), each with the answer tableguard must give (tests/integration/test_hostile.py).
"""Regenerate with: python3 tests/cases/hostile/make_corpus.py

Each case is NAME.json (NAME.json.gz when the body is over 64 KiB) holding the exact request
body, and one row of expected.tsv:

    name  webhook  status  allowed  patch  why

webhook is mutate, validate or both (the same answer from each); status is the HTTP status; for
a 200, allowed is true or false and patch says whether the response carries a patch (yes/no);
for a 400 both are "-". The policy is policy/default.yaml: aws-dynamodb-kro components get the
dynamodb-protection-kro trait, a table named *-prod must keep deletion protection on (deny) and
should keep point-in-time recovery on (warn), kube-system is excluded.

The rule the corpus pins down: a body that is not an AdmissionReview v1 request the API server
could have sent (bad JSON, bad UTF-8, a raw NUL byte, an escaped NUL in the uid, nesting past
what its decoder reads, duplicate keys, a request field of the wrong type) is 400; every review
it could send is 200 with its uid. One that cannot be read faithfully (an escaped NUL, nesting
past cJSON's 1000 levels) is denied when it is of an Application and allowed otherwise; a
well-formed review of an object that is not a valid Application is allowed, without a patch
unless there is a component the patch can safely fix.
"""
import copy
import gzip
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
BIG = 64 * 1024


def app(components, name="orders", namespace="shop", **meta):
    md = {"name": name, "namespace": namespace, "creationTimestamp": None, **meta}
    return {"apiVersion": "core.oam.dev/v1beta1", "kind": "Application", "metadata": md,
            "spec": {"components": components}}


def table(name, table_name=None, traits=None, **props):
    c = {"name": name, "type": "aws-dynamodb-kro", "properties": {"region": "us-east-1", **props}}
    if table_name is not None:
        c["properties"]["tableName"] = table_name
    if traits is not None:
        c["traits"] = traits
    return c


def trait(**props):
    return {"type": "dynamodb-protection-kro", "properties": props}


def review(obj, operation="CREATE", old=None, uid="7b1c7a62-5d1e-4a4b-9a55-0c4f2a4e9d01"):
    gvk = {"group": "core.oam.dev", "version": "v1beta1", "kind": "Application"}
    gvr = {"group": "core.oam.dev", "version": "v1beta1", "resource": "applications"}
    md = (obj if isinstance(obj, dict) else None) or old or {}
    md = md.get("metadata") if isinstance(md.get("metadata"), dict) else {}
    name = md.get("name") if isinstance(md.get("name"), str) else ""
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
            "request": {"uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk,
                        "requestResource": gvr, "name": name,
                        "namespace": md.get("namespace", "shop"), "operation": operation,
                        "userInfo": {"username": "alice@example.com", "uid": "4f3c2a",
                                     "groups": ["system:authenticated"]},
                        "object": obj, "oldObject": old, "dryRun": False,
                        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}}


def dumps(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


# The well-formed baseline: one production table without the trait (mutate patches it,
# validate denies it) and one staging table.
GOOD_APP = app([table("orders", "orders-prod"), table("carts", "carts-staging")])
GOOD = review(GOOD_APP)
GOOD_BYTES = dumps(GOOD)


def with_request(**fields):
    """The baseline review with request fields replaced (a value of DROP removes the field)."""
    r = copy.deepcopy(GOOD)
    for k, v in fields.items():
        if v is DROP:
            del r["request"][k]
        else:
            r["request"][k] = v
    return dumps(r)


def with_root(**fields):
    r = copy.deepcopy(GOOD)
    for k, v in fields.items():
        if v is DROP:
            del r[k]
        else:
            r[k] = v
    return dumps(r)


def with_object(obj, **kw):
    return dumps(review(obj, **kw))


def splice(marker, replacement):
    """The baseline body with the first occurrence of `marker` replaced, byte for byte."""
    assert marker in GOOD_BYTES, marker
    return GOOD_BYTES.replace(marker, replacement, 1)


def nested(depth, kind="["):
    """A value nested `depth` levels deep: arrays, or objects with one member."""
    if kind == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


DROP = object()
BAD = ("-", "-")
ALLOW = ("true", "no")
CASES = []


def case(name, body, webhook, status, allowed, patch, why):
    CASES.append((name, body, webhook, status, allowed, patch, why))


def bad(name, body, why):
    case(name, body, "both", 400, *BAD, why)


def ok(name, body, why, allowed="true", patch="no", webhook="both"):
    case(name, body, webhook, 200, allowed, patch, why)


def build():
    # ---- not JSON, or not one JSON document -------------------------------------------------
    bad("empty", b"", "an empty body")
    bad("whitespace-only", b" \n\t\r\n", "only whitespace")
    bad("truncated-half", GOOD_BYTES[: len(GOOD_BYTES) // 2], "the baseline cut in half")
    bad("truncated-last-brace", GOOD_BYTES[:-1], "the baseline without its last brace")
    bad("open-brace", b"{", "a lone opening brace")
    bad("not-json", b"hello, webhook", "plain text")
    bad("top-level-array", b"[" + GOOD_BYTES + b"]", "the review inside an array")
    bad("top-level-string", b'"AdmissionReview"', "a JSON string")
    bad("top-level-null", b"null", "JSON null")
    bad("top-level-number", b"42", "a JSON number")
    bad("trailing-garbage", GOOD_BYTES + b"xyz", "a valid review followed by text")
    bad("two-documents", GOOD_BYTES + b"\n" + GOOD_BYTES, "two reviews back to back")
    bad("single-quotes", b"{'apiVersion':'admission.k8s.io/v1'}", "JSON with single quotes")
    bad("comment", b"/* hi */" + GOOD_BYTES, "a comment before the document")
    bad("nan", splice(b'"dryRun":false', b'"dryRun":NaN'), "a NaN literal")
    ok("bom", b"\xef\xbb\xbf" + GOOD_BYTES,
       "a UTF-8 byte order mark: RFC 8259 lets a parser ignore it, and cJSON does",
       patch="yes", webhook="mutate")
    # ---- bytes --------------------------------------------------------------------------------
    bad("utf8-invalid-byte", splice(b"orders-prod", b"orders-\xffprod"), "a 0xFF byte in a name")
    bad("utf8-overlong", splice(b"orders-prod", b"orders\xc0\xafprod"), "an overlong encoding of /")
    bad("utf8-surrogate", splice(b"orders-prod", b"orders\xed\xa0\x80prod"),
        "a UTF-16 surrogate encoded as UTF-8")
    bad("utf8-truncated-end", GOOD_BYTES + b"\xe2\x82", "a multi-byte sequence cut at the end")
    bad("utf8-latin1", splice(b"alice@example.com", b"al\xefce@example.com"),
        "a Latin-1 byte in the username")
    bad("nul-raw", splice(b"orders-prod", b"orders\x00-prod"), "a raw NUL byte in a string")
    bad("nul-between-tokens", splice(b'"dryRun":false', b'"dryRun":\x00false'),
        "a raw NUL byte between tokens")
    bad("nul-escaped-uid", splice(b'"uid":"7b1c', b'"uid":"\\u00007b1c'),
        "an escaped NUL in request.uid: the API server's uids are UUIDs")
    # An escaped NUL elsewhere is a review the API server forwards (its decoder takes it). The
    # policy cannot read it faithfully, so an Application is denied, saying why, whatever the
    # failurePolicy; an object the webhook does not guard passes.
    ok("nul-escaped-table", splice(b"orders-prod", b"orders\\u0000-prod"),
       "an escaped NUL in a table name: cannot be read faithfully, denied", allowed="false")
    ok("nul-escaped-key", splice(b'"region":"us-east-1"',
                                 b'"region":"us-east-1","a\\u0000b":1,"a\\u0000c":2'),
       "escaped NULs in property keys (distinct after the NUL): denied", allowed="false")
    ok("nul-escaped-username", splice(b"alice@example.com", b"alice\\u0000@example.com"),
       "an escaped NUL in the username, which exclusions read: denied", allowed="false")
    ok("nul-escaped-configmap", with_object({"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "x\u0000y"}}),
       "an escaped NUL in an object the webhook does not guard: allowed")
    ok("nul-escaped-excluded-namespace", with_object(app([table("t", "t\u0000-prod")],
                                                         namespace="kube-system")),
       "an escaped NUL in an Application of an excluded namespace: not judged, allowed")
    ok("nul-escaped-and-marker-in-uid", splice(b'"uid":"7b1c', b'"uid":"\xef\xb7\x90\\ufdd07b1c')
       .replace(b"orders-prod", b"orders\\u0000-prod", 1),
       "U+FDD0 raw and escaped in the uid beside a NUL: the uid is echoed as sent", allowed="false")
    bad("lone-high-surrogate", splice(b"orders-prod", b"orders\\ud800-prod"),
        "an escaped lone high surrogate")
    bad("lone-low-surrogate", splice(b"orders-prod", b"orders\\udc00-prod"),
        "an escaped lone low surrogate")
    ok("escaped-surrogate-pair", splice(b"carts-staging", b"carts-\\ud83d\\ude00-staging"),
       "an escaped emoji in a table name is fine (orders-prod still denied)", allowed="false",
       webhook="validate")
    # ---- nesting ------------------------------------------------------------------------------
    bad("nesting-100000-arrays", splice(b'"dryRun":false', b'"dryRun":false,"x":' +
                                        nested(100000)), "arrays nested 100 000 deep")
    bad("nesting-100000-objects", splice(b'"dryRun":false', b'"dryRun":false,"x":' +
                                         nested(100000, "{")), "objects nested 100 000 deep")
    bad("nesting-100000-unclosed", b'{"a":' + b"[" * 100000, "100 000 open brackets, never closed")
    # The root is level 1 and request level 2: 998 more levels make 1000, cJSON's limit.
    ok("nesting-1000-in-request", splice(b'"dryRun":false', b'"dryRun":false,"x":' + nested(998)),
       "exactly 1000 levels in all: the deepest body that parses", patch="yes", webhook="mutate")
    # Past cJSON's limit and within the API server's decoder's (10 000 levels in the object):
    # a review it forwards, denied saying why when it is of an Application.
    ok("nesting-1001-in-request", splice(b'"dryRun":false', b'"dryRun":false,"x":' +
                                         nested(999)),
       "1001 levels: one over cJSON's limit, denied", allowed="false")
    deep_props = b'"region":"us-east-1","x":'
    ok("nesting-5000-in-object", splice(b'"region":"us-east-1"', deep_props + nested(5000, "{")),
       "free-form properties nested 5000 deep: denied", allowed="false")
    ok("nesting-10000-object", with_object(None).replace(b'"object":null', b'"object":' +
                                                         nested(10000)),
       "an object of arrays 10 000 deep, the most the API server decodes: not guarded, allowed")
    bad("nesting-10001-object", with_object(None).replace(b'"object":null', b'"object":' +
                                                          nested(10001)),
        "an object 10 001 deep: more than the API server decodes")
    ok("nesting-5000-in-configmap", with_object({"apiVersion": "v1", "kind": "ConfigMap",
                                                 "data": None}).replace(
        b'"data":null', b'"data":' + nested(5000, "{")),
       "a ConfigMap nested 5000 deep: not guarded, allowed")
    bad("nesting-5000-invalid-inside", splice(b'"region":"us-east-1"', deep_props +
                                              nested(5000).replace(b"[]", b"[1,]")),
        "invalid JSON below cJSON's depth: still checked")
    bad("nesting-5000-duplicate-inside", splice(b'"region":"us-east-1"', deep_props +
                                                nested(5000, "{").replace(b'"a":1', b'"a":1,"a":2')),
        "duplicate keys below cJSON's depth: still checked")
    # ---- duplicate keys -------------------------------------------------------------------------
    bad("duplicate-key-root", b'{"kind":"AdmissionReview",' + GOOD_BYTES[1:],
        "kind twice at the root")
    bad("duplicate-key-uid", splice(b'"uid":"7b1c', b'"uid":"other","uid":"7b1c'),
        "request.uid twice")
    bad("duplicate-key-component", splice(b'"name":"orders","type"',
                                          b'"name":"orders","type":"webservice","type"'),
        "a component's type twice: the API server and tableguard could disagree")
    bad("duplicate-key-traits", splice(b'"name":"orders",',
                                       b'"name":"orders","traits":[],"traits":null,'),
        "a component's traits twice")
    # ---- the review's own fields ------------------------------------------------------------------
    bad("apiversion-missing", with_root(apiVersion=DROP), "no apiVersion")
    bad("apiversion-v1beta1", with_root(apiVersion="admission.k8s.io/v1beta1"),
        "the old v1beta1 review")
    bad("apiversion-number", with_root(apiVersion=1), "apiVersion is a number")
    bad("apiversion-null", with_root(apiVersion=None), "apiVersion is null")
    bad("kind-wrong", with_root(kind="Application"), "kind is not AdmissionReview")
    bad("kind-array", with_root(kind=["AdmissionReview"]), "kind is an array")
    bad("request-missing", with_root(request=DROP), "no request")
    bad("request-null", with_root(request=None), "request is null")
    bad("request-array", with_root(request=[GOOD["request"]]), "request is an array")
    bad("request-string", with_root(request="{}"), "request is a string")
    bad("uid-missing", with_request(uid=DROP), "no request.uid")
    bad("uid-empty", with_request(uid=""), "request.uid is empty")
    bad("uid-null", with_request(uid=None), "request.uid is null")
    bad("uid-number", with_request(uid=12345), "request.uid is a number")
    bad("uid-object", with_request(uid={"id": "x"}), "request.uid is an object")
    bad("operation-missing", with_request(operation=DROP), "no request.operation")
    bad("operation-patch", with_request(operation="PATCH"), "an operation that does not exist")
    bad("operation-lowercase", with_request(operation="create"), "operations are upper case")
    bad("operation-number", with_request(operation=1), "request.operation is a number")
    bad("namespace-number", with_request(namespace=7), "request.namespace is a number")
    bad("name-array", with_request(name=["orders"]), "request.name is an array")
    bad("resource-string", with_request(resource="applications"), "request.resource is a string")
    bad("resource-group-number", with_request(resource={"group": 1, "version": "v1beta1",
                                                        "resource": "applications"}),
        "request.resource.group is a number")
    bad("dryrun-string", with_request(dryRun="true"), "request.dryRun is a string")
    bad("dryrun-number", with_request(dryRun=1), "request.dryRun is a number")
    bad("userinfo-string", with_request(userInfo="alice"), "request.userInfo is a string")
    bad("username-number", with_request(userInfo={"username": 42}),
        "request.userInfo.username is a number")
    bad("groups-string", with_request(userInfo={"username": "a", "groups": "system:masters"}),
        "request.userInfo.groups is a string: an exclusion must not be guessed")
    bad("groups-number-item", with_request(userInfo={"username": "a", "groups": [1]}),
        "request.userInfo.groups holds a number")
    # Optional fields the API server may leave out or send as null are fine.
    ok("optional-fields-null", with_request(namespace=None, name=None, resource=None, dryRun=None,
                                            userInfo=None),
       "null for every optional request field", patch="yes", webhook="mutate")
    ok("unknown-fields-everywhere", dumps({**GOOD, "extra": [1, {"x": None}], "request": {
        **GOOD["request"], "futureField": {"a": 1}, "object": {
            **GOOD_APP, "status": {"phase": "running"}, "spec": {
                **GOOD_APP["spec"], "policies": [{"type": "topology"}]}}}}),
       "unknown fields at every level are ignored", patch="yes", webhook="mutate")
    ok("key-order-reversed", dumps(dict(reversed(list({**GOOD, "request": dict(
        reversed(list(GOOD["request"].items())))}.items())))),
       "members in reverse order", patch="yes", webhook="mutate")
    # ---- the object: well-formed reviews of things that are not valid Applications ---------------
    ok("object-null-create", with_object(None), "CREATE with object null")
    ok("object-missing", with_request(object=DROP), "no request.object at all")
    ok("object-string", with_object("Application"), "request.object is a string")
    ok("object-array", with_object([GOOD_APP]), "request.object is an array")
    ok("object-number", with_object(3.5), "request.object is a number")
    ok("object-configmap", with_object({"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "x", "namespace": "shop"}}),
       "a ConfigMap sent to the Application webhook")
    ok("object-kind-number", with_object({**GOOD_APP, "kind": 5}), "kind is a number")
    ok("object-apiversion-null", with_object({**GOOD_APP, "apiVersion": None}),
       "apiVersion is null")
    ok("spec-null", with_object({**GOOD_APP, "spec": None}), "spec is null")
    ok("spec-string", with_object({**GOOD_APP, "spec": "components"}), "spec is a string")
    ok("components-null", with_object(app(None)), "spec.components is null")
    ok("components-object", with_object(app({"orders": table("orders", "orders-prod")})),
       "spec.components is an object")
    ok("components-junk-items", with_object(app([None, 1, "x", [], True, {}])),
       "components that are null, numbers, strings, lists, booleans and empty")
    ok("component-type-number", with_object(app([{**table("orders", "orders-prod"), "type": 1}])),
       "a component whose type is a number is not a table")
    ok("component-name-null", with_object(app([{**table("orders"), "name": None}])),
       "a table component without a usable name or tableName is passed over", patch="yes",
       webhook="mutate")
    ok("table-name-number", with_object(app([table("orders-prod", 17)])),
       "a numeric tableName falls back to the component name (orders-prod): denied",
       allowed="false", webhook="validate")
    ok("metadata-null", with_object({**app([table("orders", "orders-prod")]), "metadata": None}),
       "metadata is null: still an Application, patched", patch="yes", webhook="mutate")
    ok("metadata-name-number", with_object(app([table("orders", "orders-prod")], name=7)),
       "metadata.name is a number: denied with an empty application name", allowed="false",
       webhook="validate")
    ok("traits-string-mutate", with_object(app([table("orders", "orders-prod", traits="oops")])),
       "traits is a string: nothing can be added safely", webhook="mutate")
    ok("traits-string-validate", with_object(app([table("orders", "orders-prod",
                                                        traits="oops")])),
       "traits is a string: the prod table's protection is an error, denied", allowed="false",
       webhook="validate")
    ok("traits-junk-items", with_object(app([table("orders", "orders-prod",
                                                   traits=[None, 5, "x", {"type": 3}])])),
       "junk trait items: the protection trait is appended", patch="yes", webhook="mutate")
    ok("trait-properties-string", with_object(app([table("orders", "orders-prod", traits=[
        {"type": "dynamodb-protection-kro", "properties": "on"}])])),
       "the trait's properties are a string: never overridden, denied", allowed="false",
       webhook="validate")
    ok("deletion-protection-string", with_object(app([table("orders", "orders-prod", traits=[
        trait(deletionProtection="true", pointInTimeRecovery=True)])])),
       "deletionProtection is the string \"true\": an error, denied", allowed="false",
       webhook="validate")
    ok("deletion-protection-null", with_object(app([table("orders", "orders-prod", traits=[
        trait(deletionProtection=None, pointInTimeRecovery=True)])])),
       "deletionProtection is null: an error, denied", allowed="false", webhook="validate")
    ok("deletion-protection-null-mutate", with_object(app([table("orders", "orders-prod", traits=[
        trait(deletionProtection=None, pointInTimeRecovery=True)])])),
       "deletionProtection is null: explicit, so never overridden", webhook="mutate")
    ok("number-overflow", splice(b'"creationTimestamp":null',
                                 b'"creationTimestamp":null,"generation":1e999'),
       "a number too large for a double", patch="yes", webhook="mutate")
    ok("control-chars-in-names", with_object(app([table("or\nders\u001b[31m", "x\t-prod")])),
       "control characters in names: the denial stays on one line", allowed="false",
       webhook="validate")
    ok("deleting-update", with_object(app([table("orders", "orders-prod")],
                                          deletionTimestamp="2025-01-01T00:00:00Z"),
                                      operation="UPDATE", old=GOOD_APP),
       "an UPDATE of an Application being deleted passes untouched")
    ok("deleting-create-mutate", with_object(app([table("orders", "orders-prod")],
                                                 deletionTimestamp="2025-01-01T00:00:00Z")),
       "a CREATE with deletionTimestamp is judged (the API server clears it after mutation)",
       patch="yes", webhook="mutate")
    ok("deleting-create-validate", with_object(app([table("orders", "orders-prod")],
                                                   deletionTimestamp="2025-01-01T00:00:00Z")),
       "a CREATE with deletionTimestamp is judged: the prod table without the trait is denied",
       allowed="false", webhook="validate")
    ok("delete-object-null", with_object(None, operation="DELETE", old=GOOD_APP),
       "DELETE carries the old object only: /mutate has nothing to add", webhook="mutate")
    ok("delete-object-null-kept", with_object(None, operation="DELETE", old=GOOD_APP),
       "DELETE of an Application holding a *-prod table: the shipped policy keeps it",
       allowed="false", webhook="validate")
    ok("excluded-namespace", with_object(app([table("t", "t-prod")], namespace="kube-system")),
       "kube-system is excluded")
    # ---- size --------------------------------------------------------------------------------
    mib = "x" * (1 << 20)
    ok("megabyte-annotation", with_object({**GOOD_APP, "metadata": {
        **GOOD_APP["metadata"], "annotations": {"note": mib}}}),
       "a 1 MiB annotation", patch="yes", webhook="mutate")
    ok("megabyte-uid", with_request(uid=mib), "a 1 MiB uid is echoed", patch="yes",
       webhook="mutate")
    ok("megabyte-table-name", with_object(app([table("orders", mib + "-prod")])),
       "a 1 MiB production table name: denied", allowed="false", webhook="validate")
    # -eu: a name no profile of the shipped policy matches, so every table gets the trait.
    ok("components-10000-mutate", with_object(app([table(f"t{i}", f"t{i}-eu")
                                                   for i in range(10000)])),
       "10 000 tables without the trait: one add per component", patch="yes", webhook="mutate")
    ok("components-10000-validate", with_object(app([table(f"t{i}", f"t{i}-eu")
                                                     for i in range(10000)])),
       "10 000 non-production tables: allowed", webhook="validate")
    ok("components-10000-prod", with_object(app([table(f"t{i}", f"t{i}-prod")
                                                 for i in range(10000)])),
       "10 000 production tables without the trait: one denial naming all", allowed="false",
       webhook="validate")
    ok("traits-10000", with_object(app([table("orders", "orders-prod", traits=[
        {"type": f"scaler-{i}"} for i in range(10000)])])),
       "10 000 other traits: the protection trait is appended", patch="yes", webhook="mutate")
    ok("groups-10000", with_request(userInfo={"username": "a", "groups": [
        f"group-{i}" for i in range(10000)]}), "10 000 groups", patch="yes", webhook="mutate")


def main():
    build()
    names = set()
    for f in os.listdir(HERE):
        if f.endswith((".json", ".json.gz")):
            os.remove(os.path.join(HERE, f))
    rows = ["# name\twebhook\tstatus\tallowed\tpatch\twhy"]
    for name, body, webhook, status, allowed, patch, why in CASES:
        assert name not in names, name
        names.add(name)
        if len(body) > BIG:
            with gzip.GzipFile(os.path.join(HERE, name + ".json.gz"), "wb", mtime=0) as f:
                f.write(body)
        else:
            with open(os.path.join(HERE, name + ".json"), "wb") as f:
                f.write(body)
        rows.append("\t".join([name, webhook, str(status), allowed, patch, why]))
    with open(os.path.join(HERE, "expected.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()

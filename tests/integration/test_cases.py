# SPDX-License-Identifier: Apache-2.0
"""Golden cases: each tests/cases/admission/<name>/ holds request.json (an AdmissionReview as the API server
sends it), an optional policy.yaml and exceptions.yaml, and the exact expected answers of both webhooks with the patch
decoded (expected-mutate.json, expected-validate.json). Every case runs through the real server
over TLS; the patch is applied with python3-jsonpatch, an independent implementation, and the
mutated object must come back from a second /mutate with no patch (reinvocation).

UPDATE_GOLDEN=1 rewrites the expected files from the server's answers: review the diff."""

import json
import os
import pathlib
import uuid

import jsonpatch
import pytest

from conftest import ROOT, SHARED, check_envelope, decode_patch

# tests/cases/ holds one directory per format: admission/ (these), policy-errors/ (a broken
# policy and its exact diagnostics), hostile/ (bodies no API server sends) and audit-tamper/
# (logs and the verdicts `audit verify` must give).
CASES = ROOT / "tests" / "cases" / "admission"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "request.json").exists())


def test_every_admission_case_is_where_it_runs():
    """A case left directly under tests/cases/ would never run: say so instead."""
    stray = sorted(p.name for p in CASES.parent.iterdir() if (p / "request.json").exists())
    assert stray == [], f"move these under tests/cases/admission/: {stray}"
    assert len(NAMES) > 0


def readable(status, body):
    """The answer with its base64 patch decoded, as stored in the expected files."""
    out = json.loads(json.dumps(body))
    if "response" in out and "patch" in out["response"]:
        out["response"]["patch"] = decode_patch(body)
    return {"status": status, "body": out}


@pytest.mark.parametrize("name", NAMES)
def test_golden_case(name, start_server):
    d = CASES / name
    review = json.loads((d / "request.json").read_text())
    policy, exceptions = d / "policy.yaml", d / "exceptions.yaml"
    flags = {"exceptions": exceptions} if exceptions.exists() else {}
    server = start_server(policy=policy if policy.exists() else None, **flags)
    conn = server.connect()
    answers = {}
    for webhook in ("mutate", "validate"):
        status, body = server.admit(webhook, review, conn=conn)
        assert status == 200
        check_envelope(body, review)
        answers[webhook] = (status, body)
        expected_file = d / f"expected-{webhook}.json"
        got = readable(status, body)
        if os.environ.get("UPDATE_GOLDEN"):
            expected_file.write_text(json.dumps(got, indent=2) + "\n")
        assert got == json.loads(expected_file.read_text()), f"{name}: {webhook} answer changed"

    # Validating answers never carry a patch: the API server rejects them.
    assert "patch" not in answers["validate"][1]["response"]
    assert "patchType" not in answers["validate"][1]["response"]
    resp = answers["validate"][1]["response"]
    if not resp["allowed"]:
        status_ = resp["status"]
        assert status_["code"] == 403 and status_["reason"] == "Forbidden"
        assert all(ord(c) >= 0x20 for c in status_["message"]), "one line, no control characters"
    for w in resp.get("warnings", []):
        assert len(w.encode()) < 120 and all(ord(c) >= 0x20 for c in w)

    ops = decode_patch(answers["mutate"][1])
    obj = review["request"]["object"]
    if ops:
        mutated = jsonpatch.JsonPatch(ops).apply(obj)
        again = json.loads(json.dumps(review))
        again["request"]["object"] = mutated
        again["request"]["uid"] = str(uuid.uuid4())  # every call, reinvocation too, has its own
        status, body = server.admit("mutate", again, conn=conn)
        assert status == 200 and decode_patch(body) == [], "a second pass must yield no patch"
        check_envelope(body, again)
        # The API server keeps the first value of each annotation and warns at every call that
        # sets another: the reinvocation must set no key to a different value.
        first = answers["mutate"][1]["response"]["auditAnnotations"]
        second = body["response"]["auditAnnotations"]
        changed = {k: (first[k], v) for k, v in second.items() if k in first and first[k] != v}
        assert not changed, f"{name}: auditAnnotations change on reinvocation: {changed}"
    conn.close()


KUBEVELA_CRD = SHARED / "kubevela" / "core.oam.dev_applications.yaml"


@pytest.mark.skipif(not KUBEVELA_CRD.exists(), reason="../shared/reference not present")
def test_golden_applications_stay_valid_for_kubevela(start_server):
    """Every Application a golden case sends, as /mutate leaves it, still fits KubeVela's own
    CRD schema (its webhook and the API server check it after ours)."""
    import jsonschema
    import yaml
    crd = yaml.safe_load(KUBEVELA_CRD.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = version["schema"]["openAPIV3Schema"]
    server = start_server()
    conn = server.connect()
    checked = 0
    for name in NAMES:
        review = json.loads((CASES / name / "request.json").read_text())
        obj = review["request"].get("object")
        if not isinstance(obj, dict) or obj.get("kind") != "Application" or \
                not str(obj.get("apiVersion", "")).startswith("core.oam.dev/"):
            continue
        try:
            jsonschema.validate(obj, schema)
        except jsonschema.ValidationError:
            continue  # a case about a malformed Application: KubeVela would refuse it anyway
        status, body = server.admit("mutate", review, conn=conn)
        assert status == 200
        ops = decode_patch(body)
        jsonschema.validate(jsonpatch.JsonPatch(ops).apply(obj) if ops else obj, schema)
        checked += 1
    conn.close()
    assert checked >= 20

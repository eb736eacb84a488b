# SPDX-License-Identifier: Apache-2.0
"""What a CI pipeline reads from `tableguard check` and `tableguard test`: directories walked,
a file that does not parse reported as a result, SARIF 2.1.0 checked against the schema and
JUnit XML against an XSD (tests/schemas, written from the specifications)."""

import json
import textwrap

import jsonschema
import pytest

from conftest import ROOT, run

etree = pytest.importorskip("lxml.etree")  # python3-lxml (Makefile DEB_TEST)

POLICY = ROOT / "policy" / "default.yaml"
SARIF = json.loads((ROOT / "tests" / "schemas" / "sarif-2.1.0.schema.json").read_text())
JUNIT = etree.XMLSchema(etree.parse(str(ROOT / "tests" / "schemas" / "junit.xsd")))

# The component "orders" starts on line 11 (its "- name:" line); its trait switches deletion
# protection off, so the deny rule and the warn rule both hit it.
BAD_APP = textwrap.dedent("""\
    apiVersion: core.oam.dev/v1beta1
    kind: Application
    metadata:
      name: orders
      namespace: shop
    spec:
      components:
        - name: carts
          type: aws-dynamodb-kro
          properties: {tableName: carts-dev}
        - name: orders
          type: aws-dynamodb-kro
          properties:
            tableName: orders-prod
          traits:
            - type: dynamodb-protection-kro
              properties: {deletionProtection: false, pointInTimeRecovery: false}
    """)
GOOD_APP = {"apiVersion": "core.oam.dev/v1beta1", "kind": "Application",
            "metadata": {"name": "carts", "namespace": "shop"},
            "spec": {"components": [{"name": "carts", "type": "aws-dynamodb-kro",
                                     "properties": {"tableName": "carts-prod"}}]}}


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "apps" / "nested").mkdir(parents=True)
    (tmp_path / "apps" / "nested" / "orders.yaml").write_text(BAD_APP)
    (tmp_path / "apps" / "carts.json").write_text(json.dumps(GOOD_APP))
    (tmp_path / "apps" / "broken.yml").write_text("a: [\n")
    (tmp_path / "apps" / "notes.txt").write_text("not a manifest\n")
    (tmp_path / "apps" / ".hidden.yaml").write_text(BAD_APP)
    return tmp_path / "apps"


def check(*args):
    return run("check", "--policy", str(POLICY), *[str(a) for a in args])


def test_directory_is_walked_and_a_parse_failure_is_a_result(tree):
    proc = check("--output", "json", tree)
    assert proc.returncode == 2  # the unreadable file wins over the denial
    out = json.loads(proc.stdout)
    sources = [r["source"] for r in out["results"]]
    assert sources == [str(tree / "broken.yml"), str(tree / "carts.json"),
                       str(tree / "nested" / "orders.yaml")]
    broken = out["results"][0]
    assert broken["allowed"] is False and "broken.yml:2:1:" in broken["error"]
    assert out["results"][1]["allowed"] is True
    assert out["results"][2]["allowed"] is False


def test_sarif_is_valid_and_points_at_the_component(tree):
    proc = check("--output", "sarif", tree)
    assert proc.returncode == 2
    log = json.loads(proc.stdout)
    jsonschema.Draft7Validator(SARIF).validate(log)
    run0 = log["runs"][0]
    assert run0["tool"]["driver"]["name"] == "tableguard"
    assert run0["invocations"][0]["exitCode"] == 2
    ids = [r["id"] for r in run0["tool"]["driver"]["rules"]]
    results = run0["results"]
    by_rule = {r["ruleId"]: r for r in results}
    assert set(by_rule) == {"manifest-error", "prod-deletion-protection",
                            "prod-point-in-time-recovery"}
    deny = by_rule["prod-deletion-protection"]
    assert deny["level"] == "error" and ids[deny["ruleIndex"]] == "prod-deletion-protection"
    loc = deny["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == str(tree / "nested" / "orders.yaml")
    assert loc["region"]["startLine"] == 11
    assert by_rule["prod-point-in-time-recovery"]["level"] == "warning"
    err = by_rule["manifest-error"]["locations"][0]["physicalLocation"]
    assert err["artifactLocation"]["uri"] == str(tree / "broken.yml")
    assert err["region"]["startLine"] == 2


def test_sarif_of_a_clean_run(tmp_path):
    (tmp_path / "carts.json").write_text(json.dumps(GOOD_APP))
    proc = check("--output", "sarif", tmp_path)
    assert proc.returncode == 0
    log = json.loads(proc.stdout)
    jsonschema.Draft7Validator(SARIF).validate(log)
    assert log["runs"][0]["results"] == []


def test_junit_is_valid_one_testcase_per_object(tree):
    proc = check("--output", "junit", tree)
    assert proc.returncode == 2
    doc = etree.fromstring(proc.stdout.encode())
    assert JUNIT.validate(doc), JUNIT.error_log
    cases = doc.findall(".//testcase")
    assert len(cases) == 3
    assert doc.get("tests") == "3" and doc.get("failures") == "1" and doc.get("errors") == "1"
    orders = [c for c in cases if c.get("name").startswith("Application orders")][0]
    assert orders.find("failure") is not None and "orders-prod" in orders.find("failure").get("message")
    assert "pointInTimeRecovery" in orders.find("system-out").text
    assert cases[0].find("error") is not None


def test_the_schemas_reject_what_they_should():
    """The fixtures are not blind: a SARIF log without a version and a JUnit case without a name
    fail them."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SARIF).validate({"runs": []})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SARIF).validate(
            {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
                                           "results": [{"message": {"text": "m"}, "level": "fatal"}]}]})
    assert not JUNIT.validate(etree.fromstring(b"<testsuites><testsuite name='s' tests='1'>"
                                                b"<testcase/></testsuite></testsuites>"))


def test_test_command_json_and_junit(tmp_path):
    suite = ROOT / "tests" / "policy" / "default-suite.yaml"
    proc = run("test", "--output", "json", str(suite))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["failed"] == 0 and out["passed"] == len(out["cases"]) > 0
    assert all(c["passed"] for c in out["cases"])
    proc = run("test", "--output", "junit", str(suite))
    doc = etree.fromstring(proc.stdout.encode())
    assert JUNIT.validate(doc), JUNIT.error_log
    assert len(doc.findall(".//testcase")) == out["passed"]
    # A failing case is a JUnit failure with the reason.
    failing = tmp_path / "suite.yaml"
    failing.write_text(textwrap.dedent(f"""\
        policy: {POLICY}
        cases:
          - name: a prod table with protection off is allowed (wrong on purpose)
            manifest:
              apiVersion: core.oam.dev/v1beta1
              kind: Application
              metadata: {{name: orders, namespace: shop}}
              spec:
                components:
                  - name: orders
                    type: aws-dynamodb-kro
                    properties: {{tableName: orders-prod}}
                    traits:
                      - type: dynamodb-protection-kro
                        properties: {{deletionProtection: false}}
            expect: {{allowed: true}}
        """))
    proc = run("test", "--output", "junit", str(failing))
    assert proc.returncode == 1
    doc = etree.fromstring(proc.stdout.encode())
    assert JUNIT.validate(doc), JUNIT.error_log
    assert doc.get("failures") == "1"
    assert "expected allowed" in doc.find(".//failure").get("message")

# SPDX-License-Identifier: Apache-2.0
"""Decision records name the tables: every record lists each table the decision examined, with
its settings before and after and the rules it hit; an excluded request's record says which
exclusion let it through and what it bypassed (docs/audit.md, record schema 2)."""

import json

from conftest import application, protection, review, run, table

POLICY_EXCLUDING_USERS = """apiVersion: tableguard.io/v1
kind: ProtectionPolicy
metadata:
  name: excluding
spec:
  components:
    types: [aws-dynamodb-kro]
    tableNameFrom: properties.tableName
  trait:
    type: dynamodb-protection-kro
    defaults: {deletionProtection: true, pointInTimeRecovery: true}
  exclude:
    namespaces: [kube-*]
    users: ["break-glass-*"]
  rules:
    - name: prod-deletion-protection
      tables: ["*-prod"]
      require: {deletionProtection: true}
      action: deny
"""


def decisions(server):
    return [r for r in server.audit_records() if r["event"] == "decision"]


def only_row(record):
    assert len(record["tables"]) == 1, record["tables"]
    return record["tables"][0]


def test_update_switching_protection_off_is_recorded_per_table(start_server):
    server = start_server()
    old = application([table("orders", "orders-prod", [protection(deletionProtection=True)])])
    new = application([table("orders", "orders-prod", [protection(deletionProtection=False)]),
                       table("carts", "carts-dev", [protection(deletionProtection=True)])])
    status, resp = server.admit("validate", review(new, "UPDATE", old=old))
    assert status == 200 and resp["response"]["allowed"] is False
    rec = decisions(server)[-1]
    assert rec["schema"] == 2
    rows = {r["table"]: r for r in rec["tables"]}
    assert set(rows) == {"orders-prod", "carts-dev"}
    orders = rows["orders-prod"]
    assert orders["component"] == "orders"
    assert orders["after"]["deletionProtection"] is False
    assert orders["rules"] == ["prod-deletion-protection"]
    assert rows["carts-dev"]["after"]["deletionProtection"] is True
    assert rows["carts-dev"]["rules"] == []
    for r in rows.values():
        assert set(r["before"]) == set(r["after"]) == {"deletionProtection", "pointInTimeRecovery"}


def test_allowed_update_names_its_table(start_server):
    server = start_server()
    app = application([table("orders", "orders-prod",
                             [protection(deletionProtection=True, pointInTimeRecovery=True)])])
    status, resp = server.admit("validate", review(app, "UPDATE", old=app))
    assert status == 200 and resp["response"]["allowed"] is True
    rec = decisions(server)[-1]
    assert rec["decision"] == "allow" and rec["rules"] == []
    row = only_row(rec)
    assert row["table"] == "orders-prod"
    assert row["after"] == {"deletionProtection": True, "pointInTimeRecovery": True}


def test_mutation_record_names_the_tables_it_protects(start_server):
    server = start_server()
    status, resp = server.admit("mutate", review(application([table("orders", "orders-prod")])))
    assert status == 200
    rec = decisions(server)[-1]
    assert rec["decision"] == "patch"
    row = only_row(rec)
    assert (row["component"], row["table"]) == ("orders", "orders-prod")
    assert row["after"] == {"deletionProtection": True, "pointInTimeRecovery": True}


def test_excluded_request_names_exclusion_tables_and_bypassed_rules(start_server):
    server = start_server(POLICY_EXCLUDING_USERS)
    app = application([table("orders", "orders-prod")], namespace="shop")
    status, resp = server.admit("validate", review(app, username="break-glass-bob"))
    assert status == 200 and resp["response"]["allowed"] is True
    status, resp = server.admit("validate", review(application([table("orders", "orders-prod")],
                                                               namespace="kube-tools")))
    assert status == 200 and resp["response"]["allowed"] is True
    by_user, by_ns = decisions(server)[-2:]
    for rec in (by_user, by_ns):
        assert rec["skipped"] == "excluded" and rec["rules"] == []
        assert only_row(rec)["table"] == "orders-prod"
        assert only_row(rec)["rules"] == ["prod-deletion-protection"]
        assert [(r["name"], r["action"], r["table"]) for r in rec["excluded"]["rules"]] == \
            [("prod-deletion-protection", "deny", "orders-prod")]
    assert {k: by_user["excluded"][k] for k in ("by", "value", "glob")} == \
        {"by": "user", "value": "break-glass-bob", "glob": "break-glass-*"}
    assert {k: by_ns["excluded"][k] for k in ("by", "value", "glob")} == \
        {"by": "namespace", "value": "kube-tools", "glob": "kube-*"}


def test_not_an_application_has_no_tables(start_server):
    server = start_server()
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "shop"}}
    server.admit("validate", review(obj))
    rec = decisions(server)[-1]
    assert rec["skipped"] == "not-application" and rec["tables"] == []


def test_verify_accepts_version_1_records(tmp_path):
    """Logs written before records named tables (no "schema" member) still verify."""
    from conftest import ROOT
    good = ROOT / "tests" / "cases" / "audit-tamper" / "good" / "audit.log"
    recs = [json.loads(l) for l in good.read_text().splitlines()]
    assert any(r["event"] == "decision" for r in recs)
    assert not any("schema" in r or "tables" in r for r in recs)
    proc = run("audit", "verify", str(good))
    assert proc.returncode == 0, proc.stdout


def test_delete_names_the_table_and_the_transition(start_server):
    server = start_server()
    old = application([table("orders", "orders-prod", [protection(deletionProtection=True)])])
    status, resp = server.admit("validate", review(None, "DELETE", old=old))
    assert status == 200
    rec = decisions(server)[-1]
    row = only_row(rec)
    assert row["table"] is None and row["oldTable"] == "orders-prod"
    assert row["transition"] == "delete"
    assert row["before"]["deletionProtection"] is True
    assert row["rules"] == [r["name"] for r in rec["rules"]]


def test_table_rows_are_bounded(start_server):
    """Like the rules, a record lists the first 1000 tables and counts the rest."""
    server = start_server()
    app = application([table(f"t{i}", f"t{i}-prod", [protection(deletionProtection=False)])
                       for i in range(1200)])
    status, _ = server.admit("validate", review(app))
    assert status == 200
    rec = decisions(server)[-1]
    assert len(rec["tables"]) == 1000 and rec["tablesOmitted"] == 200
    assert rec["tables"][999]["table"] == "t999-prod"
    assert rec["tables"][999]["rules"] == ["prod-deletion-protection"]

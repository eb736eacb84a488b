# SPDX-License-Identifier: Apache-2.0
"""The doors to a lost production table, as a GitOps pipeline and a person open them against
the running server with the shipped policy: an UPDATE that drops the table's component (with
oldObject, dry run first as Flux's server-side apply sends it), then the DELETE of the
Application (object null), both denied with the fix named; and the ways through (the orphan
finalizer, a garbage-collect keep rule) allowed. `tableguard check --old` and `--operation
DELETE` give the same answers offline."""

import copy
import json


from conftest import DEFAULT_POLICY, application, check_envelope, decode_patch, run
from conftest import review, table

ORPHAN = "app.oam.dev/orphan-resource"


def web():
    return {"name": "web", "type": "webservice", "properties": {"image": "nginx"}}


def live_app(**meta):
    """The Application as it lives in the cluster: mutated, so the trait is in place."""
    return application([table("orders-table", "orders-prod",
                              traits=[{"type": "dynamodb-protection-kro", "properties": {
                                  "deletionProtection": True, "pointInTimeRecovery": True}}]),
                        web()], **meta)


def denied(server, webhook, rev, conn):
    status, body = server.admit(webhook, rev, conn=conn)
    assert status == 200
    check_envelope(body, rev)
    r = body["response"]
    assert r["allowed"] is False, r
    assert r["status"]["code"] == 403 and r["status"]["reason"] == "Forbidden"
    msg = r["status"]["message"]
    assert "immutable" not in msg.lower()
    assert "patch" not in r and "patchType" not in r
    assert r["auditAnnotations"]["rules"] == "prod-tables-are-kept"
    return msg


def allowed(server, webhook, rev, conn):
    status, body = server.admit(webhook, rev, conn=conn)
    assert status == 200
    check_envelope(body, rev)
    assert body["response"]["allowed"] is True, body["response"].get("status")
    return body


def test_gitops_removal_then_application_delete_are_denied(start_server):
    server = start_server()
    conn = server.connect()
    old = live_app()
    # Git drops the table's component; the controller dry-runs, then applies: an UPDATE with
    # oldObject, seen by /mutate (nothing to add) and /validate, both times.
    new = copy.deepcopy(old)
    new["spec"]["components"] = [web()]
    for dry_run in (True, False):
        rev = review(new, operation="UPDATE", old=old, dry_run=dry_run)
        body = allowed(server, "mutate", rev, conn)
        assert decode_patch(body) == []
        msg = denied(server, "validate", rev, conn)
        assert 'table "orders-prod"' in msg and "forbids remove" in msg
        assert 'component "orders-table" is removed' in msg
        assert "deleted with its data" in msg
        assert ORPHAN in msg and "strategy: never" in msg and "approved exception" in msg
    # The file is deleted from Git: prune sends the DELETE of the Application.
    rev = review(None, operation="DELETE", old=old)
    msg = denied(server, "validate", rev, conn)
    assert "forbids delete" in msg and 'table "orders-prod"' in msg
    assert "vela delete --orphan" in msg
    # Renames are doors too: the table name, and the component name.
    for change in ({"tableName": "orders2-prod"}, None):
        new = copy.deepcopy(old)
        if change:
            new["spec"]["components"][0]["properties"].update(change)
        else:
            new["spec"]["components"][0]["name"] = "orders-db"
        msg = denied(server, "validate", review(new, operation="UPDATE", old=old), conn)
        assert "forbids rename" in msg
    conn.close()


def test_the_ways_through_are_allowed(start_server):
    server = start_server()
    conn = server.connect()
    old = live_app()
    # vela delete --orphan: an UPDATE adding the finalizer, then the DELETE.
    orphaned = copy.deepcopy(old)
    orphaned["metadata"]["finalizers"] = [ORPHAN]
    allowed(server, "validate", review(orphaned, operation="UPDATE", old=old), conn)
    allowed(server, "validate", review(None, operation="DELETE", old=orphaned), conn)
    # The finalizers being removed while it is deleted: always allowed.
    going = copy.deepcopy(old)
    going["metadata"]["deletionTimestamp"] = "2026-11-29T01:00:00Z"
    gone = copy.deepcopy(going)
    gone["spec"]["components"] = [web()]
    allowed(server, "validate", review(gone, operation="UPDATE", old=going), conn)
    # A garbage-collect rule keeping the component, in place before and after the removal.
    keep = [{"name": "keep-tables", "type": "garbage-collect", "properties": {"rules": [
        {"selector": {"componentTypes": ["aws-dynamodb-kro"]}, "strategy": "never"}]}}]
    kept = copy.deepcopy(old)
    kept["spec"]["policies"] = keep
    allowed(server, "validate", review(kept, operation="UPDATE", old=old), conn)
    removed = copy.deepcopy(kept)
    removed["spec"]["components"] = [web()]
    allowed(server, "validate", review(removed, operation="UPDATE", old=kept), conn)
    # ... but added in the same change that removes the component, it comes too late.
    denied(server, "validate", review(removed, operation="UPDATE", old=old), conn)
    # A non-production table goes freely.
    dev = application([table("t", "t-dev"), web()])
    allowed(server, "validate", review(None, operation="DELETE", old=dev), conn)
    conn.close()


def test_check_old_and_delete_give_the_server_answers(start_server, tmp_path):
    server = start_server()
    old = live_app()
    new = copy.deepcopy(old)
    new["spec"]["components"] = [web()]
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))

    status, body = server.admit("validate", review(new, operation="UPDATE", old=old))
    r = run("check", "--policy", DEFAULT_POLICY, "--old", tmp_path / "old.json", "--output", "json",
           tmp_path / "new.json")
    assert r.returncode == 1, r.stderr
    res = json.loads(r.stdout)["results"][0]
    assert res["operation"] == "UPDATE"
    assert res["message"] == body["response"]["status"]["message"]
    assert [x["name"] for x in res["rules"]] == ["prod-tables-are-kept"]

    status, body = server.admit("validate", review(None, operation="DELETE", old=old))
    r = run("check", "--policy", DEFAULT_POLICY, "--operation", "DELETE", "--output", "json",
           tmp_path / "old.json")
    assert r.returncode == 1, r.stderr
    res = json.loads(r.stdout)["results"][0]
    assert res["operation"] == "DELETE" and res["patch"] == []
    assert res["message"] == body["response"]["status"]["message"]

    # Unchanged: allowed; the old file must hold the object the manifest updates.
    r = run("check", "--policy", DEFAULT_POLICY, "--old", tmp_path / "old.json",
           tmp_path / "old.json")
    assert r.returncode == 0, r.stdout + r.stderr
    other = copy.deepcopy(new)
    other["metadata"]["name"] = "carts"
    (tmp_path / "other.json").write_text(json.dumps(other))
    r = run("check", "--policy", DEFAULT_POLICY, "--old", tmp_path / "old.json",
           tmp_path / "other.json")
    assert r.returncode == 2 and 'holds no Application "carts"' in r.stderr
    r = run("check", "--policy", DEFAULT_POLICY, "--old", tmp_path / "old.json", "--operation",
           "CREATE", tmp_path / "new.json")
    assert r.returncode == 2 and "--old goes with --operation UPDATE" in r.stderr
    r = run("check", "--policy", DEFAULT_POLICY, "--operation", "PATCH", tmp_path / "new.json")
    assert r.returncode == 2 and "CREATE, UPDATE or DELETE" in r.stderr

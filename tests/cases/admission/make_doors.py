#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the golden cases of the doors to a lost production table
(tests/cases/admission/door-*): each door in a denied and an allowed form, with and without the keep rules, UPDATE and DELETE, dry run
and not, as the API server sends them. The expected answers come from the server
(UPDATE_GOLDEN=1 python3 -m pytest tests/integration/test_cases.py) and are reviewed by hand;
this script only writes request.json and README. Run it from anywhere."""

import copy
import hashlib
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
ORPHAN = "app.oam.dev/orphan-resource"
TRAIT = {"type": "dynamodb-protection-kro",
         "properties": {"deletionProtection": True, "pointInTimeRecovery": True}}


def kro(name, table, traits=(TRAIT,)):
    c = {"name": name, "type": "aws-dynamodb-kro",
         "properties": {"region": "us-east-1", "tableName": table}}
    if traits is not None:
        c["traits"] = [copy.deepcopy(t) for t in traits]
    return c


def web():
    return {"name": "web", "type": "webservice", "properties": {"image": "nginx:1.27"}}


def app(components, finalizers=None, policies=None, **meta):
    md = {"name": "orders", "namespace": "shop", "uid": "5e0c6f7e-1b7a-4c55-9d2f-8f6c1a2b3c4d",
          "resourceVersion": "4711", "generation": 3, "creationTimestamp": "2026-11-01T09:00:00Z"}
    md.update(meta)
    if finalizers:
        md["finalizers"] = finalizers
    a = {"apiVersion": "core.oam.dev/v1beta1", "kind": "Application", "metadata": md,
         "spec": {"components": components}}
    if policies is not None:
        a["spec"]["policies"] = policies
    return a


def gc(rule):
    return [{"name": "keep-tables", "type": "garbage-collect", "properties": {"rules": [rule]}}]


def override(components):
    return [{"name": "fast-deploys", "type": "override", "properties": {"components": components}}]


def review(name, operation, obj, old, dry_run=False):
    gvk = {"group": "core.oam.dev", "version": "v1beta1", "kind": "Application"}
    gvr = {"group": "core.oam.dev", "version": "v1beta1", "resource": "applications"}
    uid = "00000000-0000-4000-8000-" + hashlib.sha1(name.encode()).hexdigest()[:12]
    opts = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {
        "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": "orders", "namespace": "shop", "operation": operation,
        "userInfo": {"username": "system:serviceaccount:flux-system:kustomize-controller",
                     "uid": "8c1d", "groups": ["system:serviceaccounts",
                                               "system:serviceaccounts:flux-system",
                                               "system:authenticated"]},
        "object": obj, "oldObject": old, "dryRun": dry_run,
        "options": {"kind": opts[operation], "apiVersion": "meta.k8s.io/v1"}}}


LIVE = app([kro("orders-table", "orders-prod"), web()])
KEEP_NEVER = gc({"selector": {"componentNames": ["orders-table"]}, "strategy": "never"})
KEEP_ORPHAN = gc({"selector": {"componentTypes": ["aws-dynamodb-kro"]}, "propagation": "orphan"})


def with_(base, **kw):
    a = copy.deepcopy(base)
    if "components" in kw:
        a["spec"]["components"] = kw["components"]
    if "policies" in kw:
        a["spec"]["policies"] = kw["policies"]
    if "finalizers" in kw:
        a["metadata"]["finalizers"] = kw["finalizers"]
    if "deleting" in kw:
        a["metadata"]["deletionTimestamp"] = "2026-11-29T01:00:00Z"
    return a


GONE = [web()]
CASES = [
    # ---- remove ------------------------------------------------------------------------------
    ("door-remove-deny", "UPDATE", with_(LIVE, components=GONE), LIVE, False,
     "UPDATE drops the component holding orders-prod (GitOps removes it from Git): KubeVela would "
     "garbage-collect its DynamoDBTable and ACK delete the table. Denied by prod-tables-are-kept "
     "with the ways through."),
    ("door-remove-deny-dry-run", "UPDATE", with_(LIVE, components=GONE), LIVE, True,
     "The same removal as Flux's server-side apply dry run sends it: the same 403, never 409/422 "
     "and never the word Flux's force mode acts on."),
    ("door-remove-orphan-finalizer-allow", "UPDATE",
     with_(LIVE, components=GONE, finalizers=[ORPHAN]), with_(LIVE, finalizers=[ORPHAN]), False,
     "The Application carries app.oam.dev/orphan-resource before and after: the table is kept, "
     "so the removal is no transition. Allowed."),
    ("door-remove-gc-never-allow", "UPDATE", with_(LIVE, components=GONE, policies=KEEP_NEVER),
     with_(LIVE, policies=KEEP_NEVER), False,
     "A garbage-collect rule with strategy: never selects the component by name, before and "
     "after: the table is kept. Allowed."),
    ("door-remove-gc-orphan-allow", "UPDATE", with_(LIVE, components=GONE, policies=KEEP_ORPHAN),
     with_(LIVE, policies=KEEP_ORPHAN), True,
     "A garbage-collect rule with propagation: orphan selects the component by type, before and "
     "after (dry run): the table is kept. Allowed."),
    ("door-remove-gc-same-change-deny", "UPDATE",
     with_(LIVE, components=GONE, policies=KEEP_NEVER), LIVE, False,
     "The keep rule is added in the same change that removes the component: KubeVela decides "
     "with the rules recorded when the table was applied, so it comes too late. Denied."),
    ("door-remove-type-change-deny", "UPDATE",
     with_(LIVE, components=[dict(kro("orders-table", "orders-prod"), type="webservice"), web()]),
     LIVE, False,
     "The component keeps its name but changes type: another kind of object is rendered and the "
     "DynamoDBTable is garbage-collected. A removal; denied."),
    ("door-remove-while-deleting-allow", "UPDATE",
     with_(LIVE, components=GONE, deleting=True), with_(LIVE, deleting=True), False,
     "An UPDATE of an Application being deleted (finalizers being removed) is always allowed, "
     "or deletions wedge."),
    # ---- rename ------------------------------------------------------------------------------
    ("door-rename-table-deny", "UPDATE",
     with_(LIVE, components=[kro("orders-table", "orders-v2-prod"), web()]), LIVE, False,
     "tableName changes: kro names the ACK Table after it, so a new table is created and the old "
     "one deleted. Denied, naming the old name to set back."),
    ("door-rename-component-deny", "UPDATE",
     with_(LIVE, components=[kro("orders-db", "orders-prod"), web()]), LIVE, True,
     "The same table under a new component name (dry run): a new DynamoDBTable and the "
     "garbage collection of the old one. Denied, naming the component name to keep."),
    ("door-rename-into-prod-deny", "UPDATE",
     with_(LIVE, components=[kro("orders-table", "orders-prod"), web()]),
     with_(LIVE, components=[kro("orders-table", "orders-staging"), web()]), False,
     "A staging table renamed to a production name: rename is matched on either name. Denied."),
    ("door-rename-gc-never-allow", "UPDATE",
     with_(LIVE, components=[kro("orders-table", "orders-v2-prod"), web()], policies=KEEP_NEVER),
     with_(LIVE, policies=KEEP_NEVER), False,
     "The table name changes while a strategy: never rule keeps the component's objects: the old "
     "table stays. Allowed."),
    # ---- delete ------------------------------------------------------------------------------
    ("door-delete-deny", "DELETE", None, LIVE, False,
     "DELETE of the Application (Flux prune, kubectl delete, a namespace deletion): object null, "
     "oldObject set. Denied with the orphan finalizer (vela delete --orphan), the keep rule and "
     "the exception as the ways through."),
    ("door-delete-deny-dry-run", "DELETE", None, LIVE, True,
     "kubectl delete --dry-run=server: the same answer."),
    ("door-delete-orphan-finalizer-allow", "DELETE", None, with_(LIVE, finalizers=[ORPHAN]), False,
     "vela delete --orphan added app.oam.dev/orphan-resource first: KubeVela leaves every "
     "rendered object. Allowed."),
    ("door-delete-gc-never-allow", "DELETE", None, with_(LIVE, policies=KEEP_NEVER), True,
     "A strategy: never rule keeps the table's component (dry run). Allowed."),
    ("door-delete-nonprod-allow", "DELETE", None,
     app([kro("cache", "cache-dev", traits=None), web()]), False,
     "Deleting an Application that holds only a development table: no rule forbids it."),
    ("door-delete-already-deleting-allow", "DELETE", None, with_(LIVE, deleting=True), False,
     "A DELETE of an Application already being deleted: the first delete was judged; allowed."),
    # ---- override policies -------------------------------------------------------------------
    ("door-override-false-deny", "UPDATE",
     with_(LIVE, policies=override([{"name": "orders-table", "traits": [
         {"type": "dynamodb-protection-kro", "properties": {"deletionProtection": False}}]}])),
     LIVE, False,
     "An override policy sets deletionProtection: false on the trait: the component looks "
     "protected, the rendered table is not. Denied, naming the policy."),
    ("door-override-disable-deny", "CREATE",
     with_(LIVE, policies=override([{"type": "aws-dynamodb-kro", "traits": [
         {"type": "dynamodb-protection-kro", "disable": True}]}])), None, False,
     "An override policy disables the protection trait for the type: deletion protection off "
     "(denied) and point-in-time recovery off (warned)."),
    ("door-override-other-component-allow", "CREATE",
     with_(LIVE, policies=override([{"name": "web", "traits": [
         {"type": "dynamodb-protection-kro", "disable": True}]}])), None, False,
     "An override that names another component does nothing to the table. Allowed."),
    ("door-override-bad-shape-deny", "CREATE",
     with_(LIVE, policies=[{"name": "odd", "type": "override", "properties": {
         "components": {"name": "orders-table"}}}]), None, False,
     "An override whose components are not a list cannot be judged: an error for every table it "
     "may name, denied under the deny rule."),
    # ---- patch traits ------------------------------------------------------------------------
    ("door-json-patch-deny", "CREATE",
     app([kro("orders-table", "orders-prod", traits=(TRAIT, {"type": "json-patch", "properties": {
         "operations": [{"op": "replace", "path": "/spec/deletionProtectionEnabled",
                         "value": False}]}})), web()]), None, False,
     "A json-patch trait writes spec.deletionProtectionEnabled: false into the rendered "
     "DynamoDBTable. Denied, naming the operation."),
    ("door-json-patch-true-allow", "CREATE",
     app([kro("orders-table", "orders-prod", traits=(TRAIT, {"type": "json-patch", "properties": {
         "operations": [{"op": "add", "path": "/spec/deletionProtectionEnabled", "value": True},
                        {"op": "add", "path": "/metadata/labels/team", "value": "shop"}]}})),
          web()]), None, True,
     "A json-patch trait that keeps protection on and patches something else: allowed."),
    ("door-json-merge-patch-deny", "UPDATE",
     with_(LIVE, components=[kro("orders-table", "orders-prod", traits=(
         TRAIT, {"type": "json-merge-patch", "properties": {"spec": {
             "pointInTimeRecoveryEnabled": None, "deletionProtectionEnabled": False}}})), web()]),
     LIVE, False,
     "A json-merge-patch trait deletes point-in-time recovery (null) and switches deletion "
     "protection off. Denied and warned."),
    # ---- k8s-objects -------------------------------------------------------------------------
    ("door-k8s-objects-table-deny", "CREATE",
     app([{"name": "raw-table", "type": "k8s-objects", "properties": {"objects": [{
         "apiVersion": "dynamodb.services.k8s.aws/v1alpha1", "kind": "Table",
         "metadata": {"name": "payments-prod"},
         "spec": {"tableName": "payments-prod", "billingMode": "PAY_PER_REQUEST"}}]}}]), None,
     False,
     "A k8s-objects component carries an ACK Table directly without deletionProtectionEnabled: "
     "ACK reads the absent field as false. Denied, naming the object and the field."),
    ("door-k8s-objects-protected-allow", "CREATE",
     app([{"name": "raw-table", "type": "k8s-objects", "properties": {"objects": [{
         "apiVersion": "kro.run/v1alpha1", "kind": "DynamoDBTable",
         "metadata": {"name": "payments"},
         "spec": {"tableName": "payments-prod", "deletionProtectionEnabled": True,
                  "pointInTimeRecoveryEnabled": True}}]}}]), None, False,
     "A k8s-objects component carries a DynamoDBTable with both protections on: allowed."),
    ("door-k8s-objects-remove-deny", "UPDATE", app([web()]),
     app([{"name": "raw-table", "type": "k8s-objects", "properties": {"objects": [{
         "apiVersion": "kro.run/v1alpha1", "kind": "DynamoDBTable",
         "metadata": {"name": "payments"},
         "spec": {"tableName": "payments-prod", "deletionProtectionEnabled": True,
                  "pointInTimeRecoveryEnabled": True}}]}}, web()]), False,
     "The k8s-objects component carrying a production DynamoDBTable is removed. Denied."),
]


def main():
    for name, op, obj, old, dry, why in CASES:
        d = HERE / name
        d.mkdir(exist_ok=True)
        (d / "request.json").write_text(json.dumps(review(name, op, obj, old, dry), indent=2) + "\n")
        (d / "README").write_text(why + "\n")
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()

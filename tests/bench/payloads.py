#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the benchmark's AdmissionReview requests, serialised as kube-apiserver sends them
(field order, null oldObject on CREATE, managedFields, kubectl's last-applied annotation), for
1, 10, 100 and 1000 components, with and without the protection trait, allowed and denied.

usage: payloads.py OUTDIR            writes into OUTDIR:
  c<N>-<trait|notrait>-<allow|deny>.json  the CREATE of an Application of N components
  c<N>-trait-allow-update.json            the UPDATE a `kubectl apply` of that Application sends
                                          once it runs (a tag changed on every component; object
                                          and oldObject carry KubeVela's status and managedFields)
  table-<bare|protected>.json             an ACK Table CREATE, as kro applies it
  table-update.json                       an ACK Table UPDATE by the ACK controller (late
                                          initialisation), oldObject with the controller's status
  dynamodbtable-<create|update>.json      the kro DynamoDBTable KubeVela renders from a
                                          1-component Application, created and then re-applied
                                          at the next revision (oldObject with kro's status)
  profiles-100.yaml                       policy/default.yaml with 100 team profiles before its own
  exceptions-100.yaml                     100 exceptions (a few expired), none matching the
                                          payloads' tables, judged at EXCEPTIONS_NOW
"""

import copy
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

COUNTS = (1, 10, 100, 1000)
GVK = {"group": "core.oam.dev", "version": "v1beta1", "kind": "Application"}
GVR = {"group": "core.oam.dev", "version": "v1beta1", "resource": "applications"}


def component(i, trait, deny):
    # Allowed without the trait: a non-production table that /mutate protects. Allowed with it:
    # a production table with protection on. Denied: production tables left unprotected.
    suffix = "prod" if (trait or deny) else "dev"
    c = {"name": f"orders-{i}", "type": "aws-dynamodb-kro",
         "properties": {"tableName": f"orders-{i}-{suffix}", "region": "eu-west-1",
                        "billingMode": "PAY_PER_REQUEST",
                        "attributeDefinitions": [{"attributeName": "pk", "attributeType": "S"},
                                                 {"attributeName": "sk", "attributeType": "S"}],
                        "keySchema": [{"attributeName": "pk", "keyType": "HASH"},
                                      {"attributeName": "sk", "keyType": "RANGE"}],
                        "tags": [{"key": "team", "value": "orders"}]}}
    if trait:
        on = not deny
        c["traits"] = [{"type": "scaler", "properties": {"replicas": 1}},
                       {"type": "dynamodb-protection-kro",
                        "properties": {"deletionProtection": on, "pointInTimeRecovery": on}}]
    return c


def application(n, trait, deny):
    spec = {"components": [component(i, trait, deny) for i in range(n)]}
    applied = {"apiVersion": "core.oam.dev/v1beta1", "kind": "Application",
               "metadata": {"annotations": {}, "name": "orders", "namespace": "shop"},
               "spec": spec}
    md = {"name": "orders", "namespace": "shop", "creationTimestamp": None,
          "labels": {"app.kubernetes.io/part-of": "shop"},
          "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                          json.dumps(applied, separators=(",", ":")) + "\n"},
          "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                             "apiVersion": "core.oam.dev/v1beta1", "time": "2024-05-02T10:11:12Z",
                             "fieldsType": "FieldsV1",
                             "fieldsV1": {"f:metadata": {"f:annotations": {".": {},
                                          "f:kubectl.kubernetes.io/last-applied-configuration":
                                          {}}, "f:labels": {".": {},
                                          "f:app.kubernetes.io/part-of": {}}},
                                          "f:spec": {".": {}, "f:components": {}}}}]}
    return {"apiVersion": "core.oam.dev/v1beta1", "kind": "Application", "metadata": md,
            "spec": spec}


def review(obj, uid):
    # Key order as kube-apiserver's encoder writes admission.k8s.io/v1 AdmissionRequest.
    req = {"uid": uid, "kind": GVK, "resource": GVR, "requestKind": GVK, "requestResource": GVR,
           "name": "orders", "namespace": "shop", "operation": "CREATE",
           "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller",
                        "uid": "2e6f0e5c-5a3f-4d0e-9b65-1f1c0a4e7a11",
                        "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd",
                                   "system:authenticated"]},
           "object": obj, "oldObject": None, "dryRun": False,
           "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1",
                       "fieldManager": "kubectl-client-side-apply"}}
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req}


def ack_table(protected):
    """An ACK Table as kro applies it: bare as the newest guidewire graph renders it (no
    protection field), or with both fields and the retain annotation."""
    md = {"name": "orders-prod", "namespace": "shop", "creationTimestamp": None,
          "labels": {"app.kubernetes.io/managed-by": "kro", "kro.run/instance-name": "orders",
                     "kro.run/instance-namespace": "shop"},
          "annotations": {"services.k8s.aws/region": "eu-west-1"}}
    spec = {"tableName": "orders-prod", "billingMode": "PAY_PER_REQUEST",
            "attributeDefinitions": [{"attributeName": "pk", "attributeType": "S"},
                                     {"attributeName": "sk", "attributeType": "S"}],
            "keySchema": [{"attributeName": "pk", "keyType": "HASH"},
                          {"attributeName": "sk", "keyType": "RANGE"}]}
    if protected:
        md["annotations"]["services.k8s.aws/deletion-policy"] = "retain"
        spec["deletionProtectionEnabled"] = True
        spec["continuousBackups"] = {"pointInTimeRecoveryEnabled": True}
    return {"apiVersion": "dynamodb.services.k8s.aws/v1alpha1", "kind": "Table", "metadata": md,
            "spec": spec}


def retarget(r, group, kind, resource, name, sa_namespace, sa_name, sa_uid):
    """Makes review r one of a `kind` object written by a service account."""
    gvk = {"group": group, "version": "v1alpha1", "kind": kind}
    gvr = {"group": group, "version": "v1alpha1", "resource": resource}
    r["request"].update(kind=gvk, resource=gvr, requestKind=gvk, requestResource=gvr, name=name)
    r["request"]["userInfo"] = {"username": f"system:serviceaccount:{sa_namespace}:{sa_name}",
                                "uid": sa_uid,
                                "groups": ["system:serviceaccounts",
                                           f"system:serviceaccounts:{sa_namespace}",
                                           "system:authenticated"]}
    return r


def table_review(obj, uid):
    r = retarget(review(obj, uid), "dynamodb.services.k8s.aws", "Table", "tables", "orders-prod",
                 "kro-system", "kro", "7c1d2e3f-0a1b-4c5d-8e9f-0a1b2c3d4e5f")
    r["request"]["options"]["fieldManager"] = "kro"
    return r


def tagged(app, value):
    """The Application after `kubectl apply` of a manifest whose tables carry another tag."""
    app = copy.deepcopy(app)
    for c in app["spec"]["components"]:
        c["properties"]["tags"] = [{"key": "team", "value": value}]
    applied = json.loads(app["metadata"]["annotations"]
                         ["kubectl.kubernetes.io/last-applied-configuration"])
    applied["spec"] = app["spec"]
    app["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = \
        json.dumps(applied, separators=(",", ":")) + "\n"
    return app


def running(app, generation, version):
    """An Application as the API server holds it once KubeVela runs it: identity, finalizer, the
    controller's managedFields and status (one service per component)."""
    app = copy.deepcopy(app)
    md = app["metadata"]
    md.update(uid="5d0c3a4e-8f1b-4c2d-9e3f-a1b2c3d4e5f6", resourceVersion=version,
              generation=generation, creationTimestamp="2024-05-02T10:11:12Z",
              finalizers=["app.oam.dev/resource-tracker-finalizer"])
    md["annotations"]["app.oam.dev/publishVersion"] = f"orders-v{generation}"
    md["managedFields"].append(
        {"manager": "kubevela", "operation": "Update", "apiVersion": "core.oam.dev/v1beta1",
         "time": "2024-05-02T10:11:20Z", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:finalizers": {".": {},
                      "v:\"app.oam.dev/resource-tracker-finalizer\"": {}}}}})
    md["managedFields"].append(
        {"manager": "kubevela", "operation": "Update", "apiVersion": "core.oam.dev/v1beta1",
         "time": "2024-05-02T10:11:31Z", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {".": {}, "f:appliedResources": {}, "f:conditions": {},
                                   "f:latestRevision": {".": {}, "f:name": {}, "f:revision": {},
                                   "f:revisionHash": {}}, "f:observedGeneration": {},
                                   "f:services": {}, "f:status": {}}},
         "subresource": "status"})
    comps = app["spec"]["components"]
    app["status"] = {
        "observedGeneration": generation - 1, "status": "running",
        "latestRevision": {"name": f"orders-v{generation - 1}", "revision": generation - 1,
                           "revisionHash": "5f8b1c2d3e4a6b7c"},
        "conditions": [{"type": t, "status": "True", "reason": "Available",
                        "lastTransitionTime": "2024-05-02T10:11:30Z"}
                       for t in ("Parsed", "Revision", "Policy", "Render", "WorkflowFinished",
                                 "Ready")],
        "services": [{"name": c["name"], "namespace": "shop", "cluster": "local",
                      "healthy": True, "message": "table ACTIVE",
                      "workloadDefinition": {"apiVersion": "kro.run/v1alpha1",
                                             "kind": "DynamoDBTable"},
                      "traits": [{"type": t["type"], "healthy": True}
                                 for t in c.get("traits", [])]} for c in comps],
        "appliedResources": [{"cluster": "local", "creator": "workflow", "name": c["name"],
                              "namespace": "shop", "kind": "DynamoDBTable",
                              "apiVersion": "kro.run/v1alpha1"} for c in comps]}
    return app


def update_review(obj, old, uid, field_manager):
    r = review(obj, uid)
    r["request"].update(operation="UPDATE", oldObject=old)
    r["request"]["options"] = {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1",
                               "fieldManager": field_manager}
    return r


def table_status():
    return {"ackResourceMetadata": {
                "arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-prod",
                "ownerAccountID": "123456789012", "region": "eu-west-1"},
            "conditions": [{"type": "ACK.ResourceSynced", "status": "True",
                            "lastTransitionTime": "2024-05-02T10:12:40Z",
                            "message": "Resource synced successfully"}],
            "creationDateTime": "2024-05-02T10:11:40Z", "itemCount": 0,
            "tableID": "3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6", "tableSizeBytes": 0,
            "tableStatus": "ACTIVE"}


def table_update():
    """The ACK controller writing back what AWS initialised (tableClass) on a protected Table."""
    old = ack_table(True)
    md = old["metadata"]
    md.update(uid="8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5968", resourceVersion="48213",
              generation=1, creationTimestamp="2024-05-02T10:11:38Z",
              finalizers=["finalizers.dynamodb.services.k8s.aws/Table"])
    md["managedFields"] = [
        {"manager": "kro", "operation": "Apply", "apiVersion": "dynamodb.services.k8s.aws/v1alpha1",
         "time": "2024-05-02T10:11:38Z", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:annotations": {"f:services.k8s.aws/deletion-policy": {},
                                                       "f:services.k8s.aws/region": {}},
                                     "f:labels": {"f:app.kubernetes.io/managed-by": {},
                                                  "f:kro.run/instance-name": {},
                                                  "f:kro.run/instance-namespace": {}}},
                      "f:spec": {"f:attributeDefinitions": {}, "f:billingMode": {},
                                 "f:continuousBackups": {"f:pointInTimeRecoveryEnabled": {}},
                                 "f:deletionProtectionEnabled": {}, "f:keySchema": {},
                                 "f:tableName": {}}}},
        {"manager": "controller", "operation": "Update",
         "apiVersion": "dynamodb.services.k8s.aws/v1alpha1", "time": "2024-05-02T10:12:40Z",
         "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {".": {}, "f:ackResourceMetadata": {}, "f:conditions": {},
                                   "f:creationDateTime": {}, "f:itemCount": {}, "f:tableID": {},
                                   "f:tableSizeBytes": {}, "f:tableStatus": {}}},
         "subresource": "status"}]
    old["status"] = table_status()
    new = copy.deepcopy(old)
    new["spec"]["tableClass"] = "STANDARD"
    r = update_review(new, old, "7ab10002-7d2e-4f5a-8c3b-000000000001", "controller")
    return retarget(r, "dynamodb.services.k8s.aws", "Table", "tables", "orders-prod",
                    "ack-system", "ack-dynamodb-controller", "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0")


def dynamodbtable(revision):
    """The DynamoDBTable KubeVela renders from component orders-0 (trait on) at a revision."""
    spec = {"tableName": "orders-0-prod", "region": "eu-west-1",
            "billingMode": "PAY_PER_REQUEST",
            "attributeDefinitions": [{"attributeName": "pk", "attributeType": "S"},
                                     {"attributeName": "sk", "attributeType": "S"}],
            "keySchema": [{"attributeName": "pk", "keyType": "HASH"},
                          {"attributeName": "sk", "keyType": "RANGE"}],
            "deletionProtectionEnabled": True, "pointInTimeRecoveryEnabled": True}
    labels = {"app.oam.dev/appRevision": f"orders-v{revision}", "app.oam.dev/cluster": "local",
              "app.oam.dev/component": "orders-0", "app.oam.dev/name": "orders",
              "app.oam.dev/namespace": "shop", "app.oam.dev/resourceType": "WORKLOAD",
              "workload.oam.dev/type": "aws-dynamodb-kro"}
    applied = {"apiVersion": "kro.run/v1alpha1", "kind": "DynamoDBTable",
               "metadata": {"labels": labels, "name": "orders-0", "namespace": "shop"},
               "spec": spec}
    md = {"name": "orders-0", "namespace": "shop", "labels": labels,
          "annotations": {"app.oam.dev/last-applied-configuration":
                          json.dumps(applied, separators=(",", ":")),
                          "app.oam.dev/last-applied-time": "2024-05-02T10:11:35Z",
                          "oam.dev/kubevela-version": "v1.9.11"},
          "ownerReferences": [{"apiVersion": "core.oam.dev/v1beta1", "kind": "ResourceTracker",
                               "name": "orders-shop", "uid": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                               "controller": True, "blockOwnerDeletion": True}],
          "creationTimestamp": None}
    return {"apiVersion": "kro.run/v1alpha1", "kind": "DynamoDBTable", "metadata": md,
            "spec": spec}


def dynamodbtable_review(operation):
    obj = dynamodbtable(1 if operation == "CREATE" else 2)
    uid = f"7ab1{3 if operation == 'CREATE' else 4:04x}-7d2e-4f5a-8c3b-000000000001"
    r = review(obj, uid)
    if operation == "UPDATE":
        old = dynamodbtable(1)
        for o in (obj, old):
            o["metadata"].update(uid="2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901",
                                 resourceVersion="48377", generation=1,
                                 creationTimestamp="2024-05-02T10:11:35Z",
                                 finalizers=["kro.run/finalizer"])
            o["status"] = {"conditions": [{"type": "InstanceSynced", "status": "True",
                                           "lastTransitionTime": "2024-05-02T10:12:41Z",
                                           "reason": "ResourcesSynced"}],
                           "state": "ACTIVE", "tableStatus": "ACTIVE",
                           "tableArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-0-prod",
                           "tableID": "3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6", "itemCount": 0,
                           "tableSizeBytes": 0, "creationDateTime": "2024-05-02T10:11:40Z"}
        r = update_review(obj, old, uid, "kubevela")
    retarget(r, "kro.run", "DynamoDBTable", "dynamodbtables", "orders-0", "vela-system",
             "kubevela-vela-core", "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d")
    if operation == "CREATE":
        r["request"]["options"]["fieldManager"] = "kubevela"
    return r


# The time core_bench judges exceptions at: the exceptions below run to 2026-12-20 (within the
# policy's 30 days) or expired on 2026-11-20.
EXCEPTIONS_NOW = "2026-12-01T00:00:00Z"
RULES = ("prod-deletion-protection", "prod-point-in-time-recovery", "staging-deletion-protection",
         "prod-tables-are-kept")


def exceptions_100():
    """What a platform team's file holds after a while: per-team migrations and retirements,
    scoped by namespace and Application, none covering the payloads' orders-* tables."""
    out = ["apiVersion: tableguard.io/v1", "kind: ProtectionExceptions",
           "metadata:", "  name: approved", "spec:", "  exceptions:"]
    for i in range(100):
        out += [f"    - name: team{i:03d}-migration", f"      ticket: CHG-{4100 + i}",
                f"      approvedBy: lead{i % 7}@example.com",
                f"      reason: \"ledger-{i} moves to its v2 table\"",
                f"      expires: \"2026-{'11' if i % 10 == 9 else '12'}-20T00:00:00Z\""]
        if i % 3 == 1:
            out.append(f"      namespaces: [team-{i}, team-{i}-*]")
        elif i % 3 == 2:
            out.append("      namespaces: [shop]")
        if i % 2:
            out.append(f"      applications: [ledger-{i}]")
        rules = [RULES[i % 4]] + ([RULES[(i + 1) % 4]] if i % 5 == 0 else [])
        env = "staging" if RULES[2] in rules else "prod"
        out.append(f"      tables: [\"ledger-{i}-*\", \"*-t{i}-archive-{env}\"]")
        out.append(f"      rules: [{', '.join(rules)}]")
    return "\n".join(out) + "\n"


def profiles_100():
    """policy/default.yaml with 100 team profiles before its own (team tables are matched before
    the generic ones, first match wins), none matching the payloads' orders-* tables: every table
    is tried against all 100 before its own profile."""
    lines = (ROOT / "policy" / "default.yaml").read_text().split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("  profiles:")) + 1
    extra = []
    for i in range(100):
        extra += [f"    - name: team-{i:03d}",
                  f"      tables: [\"ledger-{i}-*-prod\", \"ledger-{i}-*-staging\"]"]
        if i % 2:
            extra.append(f"      namespaces: [team-{i}, team-{i}-*]")
        extra.append(f"      defaults: {{deletionProtection: true, "
                     f"pointInTimeRecovery: {'true' if i % 3 else 'false'}}}")
        if i % 4 == 0:
            extra.append("      retain: true")
    return "\n".join(lines[:at] + extra + lines[at:])


def main():
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    # An option is not a directory: "--help" used to become one, full of payloads.
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    k = 0
    for n in COUNTS:
        for trait in (False, True):
            for deny in (False, True):
                k += 1
                uid = f"0b9c{k:04x}-7d2e-4f5a-8c3b-{n:012d}"
                name = f"c{n}-{'trait' if trait else 'notrait'}-{'deny' if deny else 'allow'}"
                body = json.dumps(review(application(n, trait, deny), uid), separators=(",", ":"))
                (out / f"{name}.json").write_text(body)
    for protected in (False, True):
        uid = f"7ab1{int(protected):04x}-7d2e-4f5a-8c3b-000000000001"
        body = json.dumps(table_review(ack_table(protected), uid), separators=(",", ":"))
        (out / f"table-{'protected' if protected else 'bare'}.json").write_text(body)
    for n in COUNTS:
        create = application(n, True, False)
        old = running(create, 2, "48120")
        new = running(tagged(create, "orders-platform"), 3, "48120")
        uid = f"0b9d{n:04x}-7d2e-4f5a-8c3b-{n:012d}"
        body = json.dumps(update_review(new, old, uid, "kubectl-client-side-apply"),
                          separators=(",", ":"))
        (out / f"c{n}-trait-allow-update.json").write_text(body)
    (out / "table-update.json").write_text(json.dumps(table_update(), separators=(",", ":")))
    for op in ("CREATE", "UPDATE"):
        (out / f"dynamodbtable-{op.lower()}.json").write_text(
            json.dumps(dynamodbtable_review(op), separators=(",", ":")))
    (out / "profiles-100.yaml").write_text(profiles_100())
    (out / "exceptions-100.yaml").write_text(exceptions_100())


if __name__ == "__main__":
    main()

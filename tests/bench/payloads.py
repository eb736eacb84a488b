#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the benchmark's AdmissionReview requests, serialised as kube-apiserver sends them
(field order, null oldObject on CREATE, managedFields, kubectl's last-applied annotation), for
1, 10, 100 and 1000 components, with and without the protection trait, allowed and denied.

usage: payloads.py OUTDIR            writes OUTDIR/c<N>-<trait|notrait>-<allow|deny>.json and
                                     OUTDIR/table-<bare|protected>.json (an ACK Table CREATE)
"""

import json
import pathlib
import sys

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


def table_review(obj, uid):
    r = review(obj, uid)
    gvk = {"group": "dynamodb.services.k8s.aws", "version": "v1alpha1", "kind": "Table"}
    gvr = {"group": "dynamodb.services.k8s.aws", "version": "v1alpha1", "resource": "tables"}
    r["request"].update(kind=gvk, resource=gvr, requestKind=gvk, requestResource=gvr,
                        name="orders-prod")
    r["request"]["userInfo"] = {"username": "system:serviceaccount:kro-system:kro",
                                "uid": "7c1d2e3f-0a1b-4c5d-8e9f-0a1b2c3d4e5f",
                                "groups": ["system:serviceaccounts",
                                           "system:serviceaccounts:kro-system",
                                           "system:authenticated"]}
    r["request"]["options"]["fieldManager"] = "kro"
    return r


def main():
    if len(sys.argv) != 2:
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


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Builds a strict apps/v1 StatefulSet schema for chart-check from the Deployment schema.

usage: statefulset-schema.py REFERENCE_SCHEMA_DIR OUT_DIR

The reference schemas (Kubernetes 1.30, strict: unknown fields are errors) hold a Deployment
but no StatefulSet. A StatefulSet's pod template, selector and metadata are the very types a
Deployment has, and its volumeClaimTemplates are the PersistentVolumeClaimTemplate a pod's
ephemeral volume has, so those parts are taken from the Deployment schema unchanged; the fields
that only a StatefulSet has are written here from the apps/v1 StatefulSetSpec of Kubernetes 1.30
(serviceName, podManagementPolicy, updateStrategy, persistentVolumeClaimRetentionPolicy,
ordinals), strict the same way. OUT_DIR/v1.30.0-standalone-strict then holds links to every
reference schema plus statefulset-apps-v1.json, and OUT_DIR/crds links to the reference CRDs:
pass `--schema-dir OUT_DIR` to chart-check.
"""

import copy
import json
import os
import sys

K8S = "v1.30.0-standalone-strict"


def obj(props, required=None):
    s = {"type": ["object", "null"], "properties": props, "additionalProperties": False}
    if required:
        s["required"] = required
    return s


def string(*values):
    s = {"type": ["string", "null"]}
    if values:
        s["enum"] = list(values)
    return s


INT = {"type": ["integer", "null"]}
INT_OR_STRING = {"oneOf": [{"type": ["string", "null"]}, {"type": ["integer", "null"]}]}


def statefulset(deployment):
    d = deployment["properties"]
    dspec = d["spec"]["properties"]
    pod_volumes = dspec["template"]["properties"]["spec"]["properties"]["volumes"]["items"]
    claim = copy.deepcopy(pod_volumes["properties"]["ephemeral"]["properties"]["volumeClaimTemplate"])
    # A claim template in a StatefulSet is a whole PersistentVolumeClaim object.
    claim["properties"]["apiVersion"] = string("v1")
    claim["properties"]["kind"] = string("PersistentVolumeClaim")
    claim["required"] = []
    spec = obj({
        "replicas": INT,
        "selector": dspec["selector"],
        "template": dspec["template"],
        "volumeClaimTemplates": {"type": ["array", "null"], "items": claim},
        "serviceName": string(),
        "podManagementPolicy": string("OrderedReady", "Parallel"),
        "updateStrategy": obj({
            "type": string("RollingUpdate", "OnDelete"),
            "rollingUpdate": obj({"partition": INT, "maxUnavailable": INT_OR_STRING}),
        }),
        "revisionHistoryLimit": INT,
        "minReadySeconds": INT,
        "persistentVolumeClaimRetentionPolicy": obj({
            "whenDeleted": string("Retain", "Delete"),
            "whenScaled": string("Retain", "Delete"),
        }),
        "ordinals": obj({"start": INT}),
    }, ["selector", "template", "serviceName"])
    return {
        "$schema": deployment.get("$schema", "http://json-schema.org/schema#"),
        "description": "StatefulSet (apps/v1, Kubernetes 1.30), composed by tests/chart/statefulset-schema.py",
        "type": "object",
        "additionalProperties": False,
        "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "StatefulSet", "version": "v1"}],
        "properties": {
            "apiVersion": string("apps/v1"),
            "kind": string("StatefulSet"),
            "metadata": d["metadata"],
            "spec": spec,
            "status": {"type": ["object", "null"]},
        },
    }


def main(ref, out):
    src = os.path.join(ref, K8S)
    dst = os.path.join(out, K8S)
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        link = os.path.join(dst, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(src, name), link)
    if os.path.isdir(os.path.join(ref, "crds")) and not os.path.lexists(os.path.join(out, "crds")):
        os.symlink(os.path.join(ref, "crds"), os.path.join(out, "crds"))
    with open(os.path.join(src, "deployment-apps-v1.json"), encoding="utf-8") as f:
        deployment = json.load(f)
    with open(os.path.join(dst, "statefulset-apps-v1.json"), "w", encoding="utf-8") as f:
        json.dump(statefulset(deployment), f)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

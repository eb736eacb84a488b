#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks that a rendered tableguard chart agrees with the server it deploys.

usage: inspect.py render VARIANT RENDERED.yaml [ARGS_OUT] [POLICY_OUT]
       inspect.py dockerfile DOCKERFILE MAKEFILE [BINARY]
       inspect.py dashboard DASHBOARD.json SOURCE_DIR
       inspect.py readme VALUES.yaml README.md

`render` asserts the contract (ports, paths, probes, mounts, security, webhook
shape, certificates) on one rendered variant, writes the container's arguments
one per line to ARGS_OUT (and a generated Secret's files to ARGS_OUT's name with
.tls) and the policy the pods see to POLICY_OUT.
`dockerfile` lints the Dockerfile statically: stages, user, entrypoint, no
HEALTHCHECK, make targets that exist, runtime packages that match the
binary's shared libraries. `dashboard` checks that every metric the Grafana
dashboard queries is one the server exports. `readme` checks that the chart
README's table documents every value. Exit 1 on any problem.
"""

import base64
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

PROBLEMS = []

HTTPS_PORT = 8443
METRICS_PORT = 9090
POLICY_DIR = "/etc/tableguard/policy"
EXCEPTIONS_DIR = "/etc/tableguard/exceptions"
TLS_DIR = "/etc/tableguard/tls"
UID = 65532


def expect(cond, what):
    if not cond:
        PROBLEMS.append(what)
    return cond


def docs_of(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(docs, kind, hooks=False):
    found = [d for d in docs if d["kind"] == kind and is_hook(d) == hooks]
    expect(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def is_hook(doc):
    return "helm.sh/hook" in (doc.get("metadata", {}).get("annotations") or {})


def flag_value(args, flag):
    if flag in args and args.index(flag) + 1 < len(args):
        return args[args.index(flag) + 1]
    return None


def walk(node, key):
    """Yields every value stored under `key` anywhere in node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, key)


def check_pod(dep, variant):
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    ctr = pod["containers"][0]
    args = ctr["args"]
    expect(all(isinstance(a, str) for a in args), f"every container arg must be a string: {args}")
    args = [str(a) for a in args]
    expect(args[0] == "serve", "container args must start with serve")
    expect(spec["replicas"] >= 2, "default replicas must be at least 2")
    if dep["kind"] == "Deployment":
        ru = spec["strategy"].get("rollingUpdate", {})
        expect(ru.get("maxUnavailable") == 0, "rolling update must keep capacity (maxUnavailable 0)")
    else:
        # A StatefulSet cannot surge: it replaces one pod at a time, the others keep serving.
        expect(spec["updateStrategy"] == {"type": "RollingUpdate"}, "StatefulSet rolls one pod at a time")
        expect(spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"},
               "audit claims outlive the StatefulSet and scale-downs")
    expect(pod.get("automountServiceAccountToken") is False, "pod must not mount a token")
    expect(pod["affinity"] or pod.get("topologySpreadConstraints"), "pods must spread")

    # Listeners, probes and the Service meet on the server's ports.
    expect(flag_value(args, "--listen") == f"0.0.0.0:{HTTPS_PORT}", f"--listen must be 0.0.0.0:{HTTPS_PORT}")
    expect(flag_value(args, "--metrics-listen") in (f"0.0.0.0:{METRICS_PORT}", "off"), "--metrics-listen")
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    expect(ports.get("https") == HTTPS_PORT, f"containerPort https must be {HTTPS_PORT}")
    if flag_value(args, "--metrics-listen") != "off":
        expect(ports.get("metrics") == METRICS_PORT, f"containerPort metrics must be {METRICS_PORT}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")):
        get = ctr.get(probe, {}).get("httpGet", {})
        expect(get.get("scheme") == "HTTPS" and get.get("path") == path and get.get("port") in ("https", HTTPS_PORT),
               f"{probe} must be HTTPS GET {path} on 8443")

    # Shutdown: the kubelet must wait longer than the server drains.
    drain = int(flag_value(args, "--shutdown-delay") or 5) + int(flag_value(args, "--drain-timeout") or 20)
    expect(pod["terminationGracePeriodSeconds"] > drain,
           f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} must exceed drain {drain}")

    # Security: numeric non-root user, read-only root, nothing extra.
    psc, csc = pod.get("securityContext", {}), ctr.get("securityContext", {})
    expect(csc.get("runAsUser", psc.get("runAsUser")) == UID, "runAsUser must be 65532")
    expect(csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, "runAsNonRoot")
    expect(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    expect(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    expect(csc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL")
    seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {}))
    expect(seccomp.get("type") == "RuntimeDefault", "seccomp RuntimeDefault")

    # Mounts: directories, never subPath, so the kubelet's ..data swap reaches the server.
    expect(not list(walk(pod, "subPath")), "no subPath mounts (they never update)")
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    for t in spec.get("volumeClaimTemplates", []):
        expect(t["metadata"]["name"] not in vols, f"claim template {t['metadata']['name']} shadows a volume")
        vols[t["metadata"]["name"]] = {"persistentVolumeClaim": t}
    expect(os.path.dirname(flag_value(args, "--policy") or "") == POLICY_DIR, "--policy inside the policy mount")
    expect("configMap" in vols.get(mounts.get(POLICY_DIR), {}), "policy mount is a ConfigMap directory")
    expect(os.path.dirname(flag_value(args, "--exceptions") or "") == EXCEPTIONS_DIR,
           "--exceptions inside the exceptions mount")
    exc_cm = vols.get(mounts.get(EXCEPTIONS_DIR), {}).get("configMap", {}).get("name")
    expect(exc_cm and exc_cm != vols.get(mounts.get(POLICY_DIR), {}).get("configMap", {}).get("name"),
           "exceptions mount is its own ConfigMap directory (RBAC can grant it alone)")
    for f, name in (("--tls-cert", "tls.crt"), ("--tls-key", "tls.key")):
        expect(flag_value(args, f) == f"{TLS_DIR}/{name}", f"{f} must be {TLS_DIR}/{name}")
    expect("secret" in vols.get(mounts.get(TLS_DIR), {}), "TLS mount is a Secret directory")
    for path, name in mounts.items():
        v = vols.get(name, {})
        expect(path in (POLICY_DIR, EXCEPTIONS_DIR, TLS_DIR) or "emptyDir" in v or "persistentVolumeClaim" in v
               or "secret" in v, f"writable mount {path} must be an emptyDir or a claim")
    audit = flag_value(args, "--audit-log")
    if audit and audit != "-":
        expect(os.path.dirname(audit) in mounts, "audit log directory must be mounted")
        expect("$(POD_NAME)" in audit, "each pod writes its own audit file")
    return args, vols[mounts[TLS_DIR]]["secret"]["secretName"]


def forbids_delete(docs):
    """True when the policy in the chart's ConfigMap has a rule with forbid: [delete]."""
    cm = [d for d in docs if d["kind"] == "ConfigMap" and "policy.yaml" in (d.get("data") or {})]
    policy = yaml.safe_load(cm[0]["data"]["policy.yaml"]) if cm else {}
    rules = ((policy or {}).get("spec") or {}).get("rules") or []
    return any("delete" in (r.get("forbid") or []) for r in rules if isinstance(r, dict))


def check_webhooks(docs, svc, ns, variant):
    validate_delete = forbids_delete(docs) and variant != "no-delete"
    if variant == "default":
        expect(validate_delete, "the shipped policy forbids delete: DELETE reaches /validate")
    if variant == "policy-map":
        expect(not validate_delete, "a policy without forbid delete: no DELETE registered")
    bundles = []
    for kind, path in (("MutatingWebhookConfiguration", "/mutate"), ("ValidatingWebhookConfiguration", "/validate")):
        cfg = one(docs, kind)
        for wh in cfg.get("webhooks", []):
            expect(len(wh["name"].split(".")) >= 3, f"{kind} webhook name needs three segments")
            cc = wh["clientConfig"]["service"]
            expect(cc["name"] == svc["metadata"]["name"] and cc["namespace"] == ns, f"{kind} points at the Service")
            expect(cc["path"] == path, f"{kind} path must be {path}")
            svc_port = {p["port"]: p["targetPort"] for p in svc["spec"]["ports"]}
            expect(svc_port.get(cc.get("port", 443)) == "https", f"{kind} port must reach the https container port")
            expect(wh["sideEffects"] == "None" and wh["admissionReviewVersions"] == ["v1"], f"{kind} sideEffects/versions")
            expect(wh["matchPolicy"] == "Equivalent", f"{kind} matchPolicy Equivalent")
            expect(wh["timeoutSeconds"] == 5 or variant != "default", f"{kind} timeoutSeconds 5 by default")
            expect(wh["failurePolicy"] == "Fail" or variant != "default", f"{kind} failurePolicy Fail by default")
            if kind.startswith("Mutating"):
                expect(wh.get("reinvocationPolicy") == "IfNeeded", "mutating reinvocationPolicy IfNeeded")
            rule = wh["rules"][0]
            # DELETE reaches /validate exactly when the policy forbids deleting a table.
            ops = ["CREATE", "DELETE", "UPDATE"] if kind.startswith("Validating") and validate_delete \
                else ["CREATE", "UPDATE"]
            expect(rule["apiGroups"] == ["core.oam.dev"] and rule["apiVersions"] == ["v1beta1"]
                   and rule["resources"] == ["applications"]
                   and sorted(rule["operations"]) == ops, f"{kind} rules: operations {ops}")
            # The rendered kinds the shipped policy guards (spec.resources) reach both webhooks.
            guarded = {(r["apiGroups"][0], r["apiVersions"][0], r["resources"][0]): r for r in wh["rules"][1:]}
            wanted = {} if variant == "no-guarded" else {
                ("dynamodb.services.k8s.aws", "v1alpha1", "tables"): "Table",
                ("kro.run", "v1alpha1", "dynamodbtables"): "DynamoDBTable"}
            expect(set(guarded) == set(wanted), f"{kind} guarded kinds: {sorted(guarded)}")
            # Guarded kinds get the same operations as Applications: DELETE only on /validate,
            # only when the policy forbids deleting a table.
            for r in guarded.values():
                expect(len(r["apiGroups"]) == len(r["apiVersions"]) == len(r["resources"]) == 1
                       and r["scope"] == "Namespaced"
                       and sorted(r["operations"]) == ops, f"{kind} guarded rule {r}")
            excluded = [v for e in wh["namespaceSelector"]["matchExpressions"]
                        if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn" for v in e["values"]]
            expect("kube-system" in excluded and ns in excluded, f"{kind} must exclude kube-system and {ns}")
            bundles.append(wh["clientConfig"].get("caBundle"))
            if variant == "selectors":
                expect(wh.get("objectSelector") and wh.get("matchConditions"), f"{kind} selectors")
        if variant.startswith("cert-manager"):
            ann = cfg["metadata"].get("annotations", {})
            expect(ann.get("cert-manager.io/inject-ca-from") == f"{ns}/{svc['metadata']['name']}",
                   f"{kind} inject-ca-from must name the serving Certificate")
    return bundles


def verify_chain(ca_b64, crt_b64, host):
    with tempfile.TemporaryDirectory() as tmp:
        ca, crt = os.path.join(tmp, "ca.crt"), os.path.join(tmp, "tls.crt")
        for path, data in ((ca, ca_b64), (crt, crt_b64)):
            with open(path, "wb") as f:
                f.write(base64.b64decode(data))
        r = subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-verify_hostname", host,
                            "-CAfile", ca, crt], capture_output=True, text=True)
        expect(r.returncode == 0, f"serving certificate must verify for {host}: {r.stdout}{r.stderr}".strip())


def workload(docs):
    """The one Deployment or StatefulSet that runs the server."""
    found = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    expect(len(found) == 1, f"expected one Deployment or StatefulSet, found {len(found)}")
    return found[0] if found else {}


def quantity_bytes(q):
    units = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"([0-9]+)([KMGT]i|[kMG])?", str(q))
    return int(m.group(1)) * units[m.group(2) or ""] if m else 0


def check_audit(docs, dep, args, variant):
    """Where the records go, per variant: the container log by default, a volume per replica."""
    audit = flag_value(args, "--audit-log")
    kinds = {d["kind"] for d in docs}
    templates = dep["spec"].get("volumeClaimTemplates", [])
    if variant in ("default", "audit-stdout"):
        expect(audit == "-", "by default the records go to stdout, the container log the cluster ships")
    if variant in ("audit-pvc", "audit-retention"):
        expect(dep["kind"] == "StatefulSet", "a volume per replica runs a StatefulSet")
        expect([t["metadata"]["name"] for t in templates] == ["audit"], "one audit claim template per replica")
        expect("PersistentVolumeClaim" not in kinds, "no shared claim beside the per-replica ones")
        expect(audit and audit.endswith("/$(POD_NAME).log"), "each replica writes <pod>.log on its volume")
    else:
        expect(dep["kind"] == "Deployment" and not templates, "without per-replica volumes a Deployment")
    if audit and audit != "-":
        expect(flag_value(args, "--audit-stdout") == "on", "a file's records are copied to stdout too")
    if variant == "audit-pvc":
        expect("--audit-hmac-key" in args, "HMAC key from the Secret")
        expect(templates and templates[0]["spec"]["resources"]["requests"]["storage"] == "10Gi", "explicit claim size")
    if variant == "audit-retention":
        # 365 days x 20 MiB a day in 100 MiB files: 73 files, and room for them plus the live one.
        files = int(flag_value(args, "--audit-max-files") or 0)
        expect(files == 73, f"365 days x 20 MiB/day in 100 MiB files keeps 73 files, not {files}")
        size = quantity_bytes(templates[0]["spec"]["resources"]["requests"]["storage"]) if templates else 0
        expect(size >= (files + 1) * 104857600, f"claim of {size} bytes holds {files} rotated files and the live one")
    if variant == "audit-shared-claim":
        claims = [v["persistentVolumeClaim"]["claimName"] for v in dep["spec"]["template"]["spec"]["volumes"]
                  if "persistentVolumeClaim" in v]
        expect(claims == ["audit-shared"], f"the existing claim is mounted: {claims}")
    if variant == "audit-emptydir":
        expect(audit and audit.endswith("/$(POD_NAME).log"), "emptyDir mode writes a file")


# Ports the hostnetwork variant moves the listeners to (tests/chart/check.sh passes them).
HOSTNET_PORTS = (10443, 10090)


def check_render(variant, path, flags_out, policy_out):
    global HTTPS_PORT, METRICS_PORT
    docs = docs_of(path)
    dep = workload(docs)
    pod = dep["spec"]["template"]["spec"]
    if variant == "hostnetwork":
        HTTPS_PORT, METRICS_PORT = HOSTNET_PORTS
        expect(pod.get("hostNetwork") is True, "hostNetwork: true")
        expect(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy ClusterFirstWithHostNet with hostNetwork")
    else:
        expect("hostNetwork" not in pod, "no hostNetwork unless asked")
    for d in docs:
        labels = d["metadata"].get("labels") or {}
        expect(labels.get("app.kubernetes.io/component"), f"{d['kind']} {d['metadata']['name']}: app.kubernetes.io/component label")
    ns = dep["metadata"]["namespace"]
    svc = one(docs, "Service")
    args, tls_secret = check_pod(dep, variant)
    bundles = check_webhooks(docs, svc, ns, variant)
    host = f"{svc['metadata']['name']}.{ns}.svc"
    kinds = {d["kind"] for d in docs}
    release_kinds = {d["kind"] for d in docs if not is_hook(d)}
    expect(not release_kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"},
           "no RBAC objects for the server (only the cleanup hook has any)")
    # Safe to apply as rendered (kubectl apply, Argo CD, kustomize): no object twice, hooks included.
    seen = {}
    for d in docs:
        key = (d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else "", d["kind"],
               d["metadata"].get("namespace", ""), d["metadata"]["name"])
        expect(key not in seen, f"{d['kind']} {d['metadata']['name']} is rendered twice")
        seen[key] = d
    selector = svc["spec"]["selector"]
    for d in docs:
        if d["kind"] in ("Pod", "Job"):
            tmpl = d if d["kind"] == "Pod" else d["spec"]["template"]
            labels = tmpl["metadata"].get("labels") or {}
            expect(not all(labels.get(k) == v for k, v in selector.items()),
                   f"{d['kind']} {d['metadata']['name']}'s pod would be selected by the Service")
    expect(one(docs, "ServiceAccount").get("automountServiceAccountToken") is False, "ServiceAccount without token")
    expect("PodDisruptionBudget" in kinds, "a PodDisruptionBudget")
    cm = [d for d in docs if d["kind"] == "ConfigMap" and "policy.yaml" in (d.get("data") or {})]
    expect(len(cm) == 1, "one ConfigMap with policy.yaml")
    xcm = [d for d in docs if d["kind"] == "ConfigMap" and "exceptions.yaml" in (d.get("data") or {})]
    if expect(len(xcm) == 1 and "policy.yaml" not in xcm[0]["data"],
              "one ConfigMap with exceptions.yaml alone"):
        expect(xcm[0]["metadata"]["name"].endswith("-exceptions"), "named ...-exceptions")

    if variant.startswith("cert-manager"):
        crt = [d for d in docs if d["kind"] == "Certificate" and d["metadata"]["name"] == svc["metadata"]["name"]]
        if expect(len(crt) == 1, "a Certificate named like the Service"):
            expect(host in crt[0]["spec"]["dnsNames"], "Certificate covers the service DNS name")
            expect(crt[0]["spec"]["secretName"] == tls_secret, "pods mount the Certificate's Secret")
        expect(not any(bundles), "cert-manager injects the CA bundle")
    elif variant == "existing-secret":
        expect(tls_secret == "my-tls", "pods mount tls.existingSecret")
        expect("Secret" not in kinds, "no generated Secret with tls.existingSecret")
        expect(all(b and b"BEGIN CERTIFICATE" in base64.b64decode(b) for b in bundles), "caBundle from tls.caBundle")
    else:
        sec = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == tls_secret]
        if expect(len(sec) == 1, "a generated TLS Secret"):
            data = sec[0]["data"]
            expect(all(b == data["ca.crt"] for b in bundles), "webhook caBundle is the Secret's ca.crt")
            verify_chain(data["ca.crt"], data["tls.crt"], host)

    check_audit(docs, dep, args, variant)
    if variant == "networkpolicy":
        np = one(docs, "NetworkPolicy")
        ports = sorted(p["port"] for r in np["spec"]["ingress"] for p in r["ports"])
        expect(ports == [HTTPS_PORT, METRICS_PORT], f"NetworkPolicy admits 8443 and 9090, not {ports}")
    if variant == "servicemonitor":
        ep = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
        expect(ep["port"] == "metrics" and ep["path"] == "/metrics", "ServiceMonitor scrapes metrics /metrics")
        expect(any(p["name"] == "metrics" and p["port"] == METRICS_PORT for p in svc["spec"]["ports"]),
               "Service exposes metrics on 9090")
    if variant == "traitdefinition":
        td = one(docs, "TraitDefinition")
        cue = td["spec"]["schematic"]["cue"]["template"]
        expect(td["metadata"]["name"] == "dynamodb-protection-kro", "TraitDefinition name")
        for field in ("deletionProtectionEnabled: ", "pointInTimeRecoveryEnabled: ",
                      "deletionProtection: *true | bool", "pointInTimeRecovery: *true | bool"):
            expect(field in cue, f"TraitDefinition CUE must contain {field!r}")
    if variant == "grafana":
        dash = [d for d in docs if d["kind"] == "ConfigMap" and "tableguard.json" in (d.get("data") or {})]
        if expect(len(dash) == 1, "a dashboard ConfigMap"):
            json.loads(dash[0]["data"]["tableguard.json"])
    if variant == "prometheusrule":
        rule = one(docs, "PrometheusRule")
        expect(rule["metadata"]["labels"].get("release") == "prometheus", "PrometheusRule carries prometheusRule.labels")
        alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
        exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
        for metric in ("apiserver_admission_webhook_rejection_count", "apiserver_admission_webhook_request_total",
                       "tableguard_tls_certificate_expiry_timestamp_seconds", "tableguard_tls_reload_total",
                       "tableguard_audit_write_errors_total", "tableguard_http_requests_waiting",
                       "tableguard_http_bodies_not_held_total"):
            expect(metric in exprs, f"an alert on {metric}")
        for kind in ("mutate", "validate"):
            hook = f"{kind}\\\\.{svc['metadata']['name']}\\\\.tableguard\\\\.io"
            expect(hook in exprs, f"the API server alerts select webhook {kind}.{svc['metadata']['name']}.tableguard.io")
        expect(len(alerts) >= 12, f"alerts: {sorted(alerts)}")
    if variant == "priority":
        expect(dep["spec"]["template"]["spec"].get("priorityClassName") == "system-cluster-critical", "priorityClassName")

    hooks = [d for d in docs if is_hook(d)]
    cleanup = [h for h in hooks if h["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"]
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    if variant != "no-cleanup":
        fullname = svc["metadata"]["name"]
        by_kind = {h["kind"]: h for h in cleanup}
        expect(sorted(by_kind) == ["ClusterRole", "ClusterRoleBinding", "Job", "ServiceAccount"],
               f"pre-delete hooks: a Job with its ServiceAccount and RBAC, not {sorted(by_kind)}")
        for h in cleanup:
            expect("before-hook-creation" in h["metadata"]["annotations"]["helm.sh/hook-delete-policy"],
                   "cleanup hooks are replaced by a new uninstall (before-hook-creation)")
        role, job = by_kind.get("ClusterRole", {}), by_kind.get("Job", {})
        expect(role.get("rules") == [{"apiGroups": ["admissionregistration.k8s.io"],
                                      "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
                                      "resourceNames": [fullname], "verbs": ["delete"]}],
               f"the cleanup ClusterRole may only delete the two configurations named {fullname}")
        weights = {h["kind"]: int(h["metadata"]["annotations"]["helm.sh/hook-weight"]) for h in cleanup}
        expect(all(weights[k] < weights.get("Job", 0) for k in weights if k != "Job"),
               "the ServiceAccount and RBAC exist before the Job runs (lower hook weight)")
        if job:
            pod = job["spec"]["template"]["spec"]
            c = pod["containers"][0]
            expect(c["image"] == image, "the cleanup Job reuses the server's image")
            expect(c.get("args") == ["webhooks", "delete", "--name", fullname], f"cleanup args {c.get('args')}")
            expect(pod["serviceAccountName"] == by_kind.get("ServiceAccount", {}).get("metadata", {}).get("name"),
                   "the Job runs as the cleanup ServiceAccount")
            expect(c["securityContext"].get("readOnlyRootFilesystem") is True, "the Job's container is read-only")
            binding = by_kind.get("ClusterRoleBinding", {})
            expect(binding.get("roleRef", {}).get("name") == role.get("metadata", {}).get("name") and
                   binding.get("subjects", [{}])[0].get("name") == pod["serviceAccountName"],
                   "the binding gives the cleanup role to the Job's ServiceAccount")
    else:
        expect(not cleanup, "no pre-delete hooks when webhook.removeBeforeUninstall=false")
    tests = [h for h in hooks if h["metadata"]["annotations"]["helm.sh/hook"] == "test" and h["kind"] == "Pod"]
    if expect(len(tests) == 1, "one helm test Pod"):
        c = tests[0]["spec"]["containers"][0]
        url = f"https://{host}:{svc['spec']['ports'][0]['port']}"
        expect(c["image"] == image and c["args"][:3] == ["selftest", "--url", url],
               f"helm test runs tableguard selftest --url {url}: {c['args']}")

    if flags_out:
        # The container's arguments, one a line; beside them the TLS files when generated.
        with open(flags_out, "w", encoding="utf-8") as f:
            f.writelines(a + "\n" for a in args)
        sec = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == tls_secret]
        if sec:
            tls_dir = os.path.splitext(flags_out)[0] + ".tls"
            os.makedirs(tls_dir, exist_ok=True)
            for key, b64 in sec[0]["data"].items():
                with open(os.path.join(tls_dir, key), "wb") as f:
                    f.write(base64.b64decode(b64))
    if policy_out and cm:
        with open(policy_out, "w", encoding="utf-8") as f:
            f.write(cm[0]["data"]["policy.yaml"])
    if policy_out and xcm:
        with open(os.path.splitext(policy_out)[0] + ".exceptions", "w", encoding="utf-8") as f:
            f.write(xcm[0]["data"]["exceptions.yaml"])


def dockerfile_instructions(path):
    """Dockerfile lines joined over backslash continuations, comments dropped."""
    out, cur = [], ""
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.rstrip("\n")
            if not cur and (not s.strip() or s.lstrip().startswith("#")):
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            out.append((cur + s).strip())
            cur = ""
    return [(i.split(None, 1)[0].upper(), i.split(None, 1)[1] if " " in i else "") for i in out]


def check_dockerfile(path, makefile, binary):
    ins = dockerfile_instructions(path)
    froms = [a for k, a in ins if k == "FROM"]
    expect(len(froms) == 2, f"two stages, found {len(froms)}")
    expect(froms and re.match(r"debian:bookworm(@\S+)?\s+AS\s+\w+", froms[0], re.I), "build stage FROM debian:bookworm AS ...")
    # No shell, no package manager, no setuid files: the runtime is scratch plus a copied tree.
    expect(froms and froms[-1] == "scratch", "runtime stage FROM scratch")
    last = max(i for i, (k, _) in enumerate(ins) if k == "FROM")
    runtime = ins[last:]
    expect(not any(k == "RUN" for k, _ in runtime), "no RUN in the runtime stage (scratch has no shell)")
    expect(any(k == "COPY" and a.startswith("--from=") for k, a in runtime), "runtime COPY --from the build stage")
    expect(("USER", "65532:65532") in runtime, "runtime USER 65532:65532")
    ep = [a for k, a in runtime if k == "ENTRYPOINT"]
    try:
        exec_form = json.loads(ep[-1]) if ep else None
    except json.JSONDecodeError:
        exec_form = None
    expect(exec_form == ["/usr/local/bin/tableguard"], "exec-form ENTRYPOINT [\"/usr/local/bin/tableguard\"]")
    expect(not any(k == "HEALTHCHECK" for k, _ in ins), "no HEALTHCHECK (Kubernetes probes do that)")
    labels = " ".join(a for k, a in runtime if k == "LABEL")
    for key, arg in (("org.opencontainers.image.version", "VERSION"), ("org.opencontainers.image.revision", "REVISION"),
                     ("org.opencontainers.image.created", "CREATED")):
        expect(re.search(re.escape(key) + r'="?\$\{?' + arg, labels), f"LABEL {key} from build arg {arg}")
    for key in ("source", "url", "documentation"):
        expect(f"org.opencontainers.image.{key}=" in labels, f"LABEL org.opencontainers.image.{key}")
    expect(("ARG", "VERSION") in runtime or any(k == "ARG" and a.startswith("VERSION") for k, a in runtime), "ARG VERSION")

    with open(makefile, encoding="utf-8") as f:
        mk = f.read()
    targets = set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", mk, re.M))
    runs = [a for k, a in ins[:last] if k == "RUN"]
    used = re.findall(r"\bmake\b((?:\s+(?:[A-Z_]+=\S+|-\S+|[a-z][\w-]*))*)", " ".join(runs))
    called = {w for u in used for w in u.split() if re.match(r"^[a-z][\w-]*$", w)}
    expect({"deps-build", "install"} <= called, f"build stage runs make deps-build and make install, ran {sorted(called)}")
    for t in sorted(called):
        expect(t in targets, f"Dockerfile runs make {t}, which the Makefile does not define")
    # debian:bookworm has no make: the step that first runs make must install it before.
    first = next((r for r in runs if re.search(r"\bmake\s", r)), "")
    expect(re.search(r"apt-get install[^&]*\bmake\b", first.split("make deps-build")[0]),
           "the build stage installs make before running make deps-build")

    # Runtime libraries: every library the binary links is copied (by ldd), none by hand.
    copy_step = " ".join(r for r in runs if "/rootfs" in r)
    expect("ldd" in copy_step, "the runtime tree copies the libraries ldd lists")
    if binary and os.access(binary, os.X_OK):
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                                subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout))
        print(f"note: {binary} links {sorted(needed)}; the image copies them and their dependencies by ldd")
    else:
        print(f"note: {binary} not built")


def check_dashboard(path, srcdir):
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    exprs = [t["expr"] for t in walk(dash, "targets") for t in t] + list(walk(dash.get("templating", {}), "query"))
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\btableguard_[a-z0-9_]+", str(e))}
    exported = set()
    for root, _, files in os.walk(srcdir):
        for name in files:
            if name.endswith((".c", ".h")):
                with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                    exported |= set(re.findall(r'"(tableguard_[a-z0-9_]+)', f.read()))
    if not exported:
        print(f"note: no tableguard_ metric names in {srcdir}; dashboard metrics not compared")
        return
    missing = sorted(m for m in used if m not in exported and re.sub(r"_total$", "", m) not in exported)
    expect(not missing, f"dashboard queries metrics the server does not export: {missing}")


def check_readme(values_path, readme_path):
    with open(values_path, encoding="utf-8") as f:
        values = yaml.safe_load(f)
    with open(readme_path, encoding="utf-8") as f:
        documented = set(re.findall(r"^\| `([\w.]+)` \|", f.read(), re.M))

    def paths(node, prefix):
        for k, v in node.items():
            path = f"{prefix}{k}"
            if isinstance(v, dict) and v and path not in documented:
                yield from paths(v, path + ".")  # a group: its members carry the docs
            else:
                yield path

    for path in paths(values, ""):
        expect(path in documented or any(path.startswith(d + ".") for d in documented),
               f"value {path} is not documented in the chart README")
    for d in sorted(documented):
        node = values
        for part in d.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        expect(node is not None or d in ("policy",), f"README documents {d}, which values.yaml lacks")


def main(argv):
    if len(argv) >= 4 and argv[1] == "render":
        check_render(argv[2], argv[3], argv[4] if len(argv) > 4 else None, argv[5] if len(argv) > 5 else None)
    elif len(argv) >= 4 and argv[1] == "dockerfile":
        check_dockerfile(argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    elif len(argv) == 4 and argv[1] == "readme":
        check_readme(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "dashboard":
        check_dashboard(argv[2], argv[3])
    else:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    for p in PROBLEMS:
        print(f"  {p}")
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

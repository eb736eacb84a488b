# SPDX-License-Identifier: Apache-2.0
"""The container image, built for real from the unchanged Dockerfile with podman and run the way
the chart runs it: read-only root, the image's own non-root USER, the chart's arguments, the policy
and certificates mounted as volumes. A real AdmissionReview goes to it over TLS, and SIGTERM must
drain and exit 0. `make image-test` runs this file; it skips, saying why, where podman cannot run.

podman runs with runc (crun cannot set rlimits or cgroups in some sandboxes), the host network
(no bridge is needed; the listeners move to free loopback ports as the chart checks do) and
--pull=never: tests/image/base.sh makes debian:bookworm locally with debootstrap."""

import http.client
import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
import uuid

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("BUILD", ROOT / "build")).resolve()
BINARY = os.environ.get("TABLEGUARD", str(BUILD / "tableguard"))
VERSION = (ROOT / "VERSION").read_text().strip()
IMAGE = "localhost/tableguard:image-test"
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
CASES = ROOT / "tests" / "cases" / "admission"


def podman(*args, check=True, timeout=120, **kw):
    r = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def podman_unusable():
    """Why podman cannot run containers here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (make deps installs it)"
    if shutil.which("runc") is None:
        return "runc is not installed (make deps installs it)"
    try:
        r = podman("info", check=False, timeout=60)
    except subprocess.TimeoutExpired:
        return "podman info timed out"
    if r.returncode != 0:
        return "podman info failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


REASON = podman_unusable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"image test skipped: {REASON}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image():
    """Builds the Dockerfile as it is; returns the image's inspect record."""
    (BUILD / "image").mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["sh", str(ROOT / "tests/image/base.sh"), str(BUILD), *PODMAN],
                       capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        pytest.skip(f"image test skipped: no debian:bookworm base image ({r.stderr.strip()[-300:]})")
    # A throw-away context: the working tree (what .dockerignore lets through), never build/.
    start = time.monotonic()
    r = subprocess.run([*PODMAN, "build", "--network", "host", "--pull=never", *LIMITS,
                        "--build-arg", f"VERSION={VERSION}", "--build-arg", "REVISION=image-test",
                        "--build-arg", "CREATED=2026-01-01T00:00:00Z",
                        "-t", IMAGE, "-f", str(ROOT / "Dockerfile"), str(ROOT)],
                       capture_output=True, text=True, timeout=1800)
    (BUILD / "image" / "build.log").write_text(r.stdout + r.stderr)
    assert r.returncode == 0, f"podman build failed (log in {BUILD}/image/build.log):\n{r.stderr[-3000:]}"
    print(f"image built in {time.monotonic() - start:.0f} s")
    return json.loads(podman("image", "inspect", IMAGE).stdout)[0]


@pytest.fixture(scope="module")
def image_files(image, tmp_path_factory):
    """The runtime image's file system as {path: TarInfo}, exported from a created container."""
    out = tmp_path_factory.mktemp("export") / "rootfs.tar"
    cid = podman("create", IMAGE).stdout.strip()
    try:
        podman("export", "-o", str(out), cid)
    finally:
        podman("rm", "-f", cid, check=False)
    with tarfile.open(out) as t:
        members = {("/" + m.name.lstrip("./")).rstrip("/") or "/": m for m in t.getmembers()}
    listing = sorted(p for p, m in members.items() if not m.isdir())
    (BUILD / "image" / "files.txt").write_text("\n".join(listing) + "\n")
    return members


def test_version_runs_in_the_image(image):
    r = podman("run", "--rm", "--network", "host", *LIMITS, IMAGE, "version")
    assert r.stdout.startswith(f"tableguard {VERSION} "), r.stdout + r.stderr


def test_cleanup_command_is_in_the_image(image):
    # The chart's pre-delete Job runs `webhooks delete` from this image; outside a pod it says so.
    r = podman("run", "--rm", "--network", "host", *LIMITS, IMAGE, "webhooks", "delete", "--name", "tg-tableguard",
               check=False)
    assert r.returncode == 2 and "KUBERNETES_SERVICE_HOST" in r.stderr, r.stderr


def test_image_config(image):
    cfg = image["Config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["/usr/local/bin/tableguard"]
    labels = cfg["Labels"]
    for key in ("source", "url", "documentation"):
        assert labels.get(f"org.opencontainers.image.{key}", "").startswith("https://"), key
    assert labels["org.opencontainers.image.created"] == "2026-01-01T00:00:00Z"
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.revision"] == "image-test"
    print(f"image size: {image['Size']} bytes")
    (BUILD / "image" / "size.txt").write_text(f"{image['Size']}\n")


def test_runtime_is_minimal(image_files):
    paths = set(image_files)
    for tool in ("/bin/sh", "/usr/bin/sh", "/bin/bash", "/usr/bin/apt-get", "/usr/bin/dpkg",
                 "/usr/bin/perl", "/usr/bin/openssl", "/bin/busybox"):
        assert tool not in paths, f"{tool} is in the runtime image"
    setid = [p for p, m in image_files.items() if m.isfile() and m.mode & 0o6000]
    assert setid == [], f"setuid/setgid files: {setid}"
    executables = [p for p, m in image_files.items() if m.isfile() and m.mode & 0o111
                   and not p.endswith(".so") and ".so." not in p]
    assert executables == ["/usr/local/bin/tableguard"], executables
    assert "/etc/tableguard/policy/policy.yaml" in paths
    passwd = image_files.get("/etc/passwd")
    assert passwd is not None


def test_passwd_names_the_user(image, tmp_path):
    cid = podman("create", IMAGE).stdout.strip()
    try:
        podman("cp", f"{cid}:/etc/passwd", str(tmp_path / "passwd"))
    finally:
        podman("rm", "-f", cid, check=False)
    users = {l.split(":")[2]: l for l in (tmp_path / "passwd").read_text().splitlines()}
    assert users["65532"].endswith(":/sbin/nologin")


def chart_container():
    """The chart's default container (args, env) from a real render, or None without a renderer."""
    helm = next((h for h in (BUILD / "tools/helm/helm", ROOT / "build/tools/helm/helm") if os.access(h, os.X_OK)), None)
    if helm:
        cmd = [str(helm), "template", "tg", str(ROOT / "charts/tableguard"), "--namespace", "tableguard-system"]
    elif shutil.which("chart-render"):
        cmd = ["chart-render", "--namespace", "tableguard-system", "tg", str(ROOT / "charts/tableguard")]
    else:
        return None
    docs = [d for d in yaml.safe_load_all(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout) if d]
    dep = next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet"))
    pod = dep["spec"]["template"]["spec"]
    ctr = pod["containers"][0]
    # Every ConfigMap the pod mounts, as {mountPath: {file: text}}, so the container sees what
    # the kubelet would put there (the policy is replaced by the test's own copy below).
    maps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    ctr["configMapMounts"] = {m["mountPath"]: maps[volumes[m["name"]]["configMap"]["name"]]
                              for m in ctr.get("volumeMounts", [])
                              if "configMap" in volumes.get(m["name"], {})
                              and volumes[m["name"]]["configMap"]["name"] in maps}
    return ctr


class Container:
    def __init__(self, name, port, mport, ca):
        self.name, self.port, self.mport, self.ca = name, port, mport, ca
        self.host = "tg-tableguard.tableguard-system.svc"

    def https(self):
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.check_hostname = False  # the certificate names the Service; the socket is loopback
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)

    def get(self, path):
        c = self.https()
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def review(self, webhook, case):
        body = (CASES / case / "request.json").read_text()
        c = self.https()
        try:
            c.request("POST", f"/{webhook}?timeout=10s", body=body,
                      headers={"Content-Type": "application/json", "Accept": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()


@pytest.fixture
def served(image, tmp_path):
    """`serve` in the image with the chart's arguments; yields a Container."""
    ctr = chart_container()
    if ctr is None:
        pytest.skip("image serve test skipped: neither Helm nor chart-render to render the chart's arguments")
    certs = tmp_path / "tls"
    r = subprocess.run([BINARY, "certs", "generate", "--service", "tg-tableguard", "--namespace",
                        "tableguard-system", "--out", str(certs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # The kubelet mounts the Secret 0440 with fsGroup 65532; here the files are made readable.
    for f in certs.iterdir():
        f.chmod(0o644)
    policy = tmp_path / "policy"
    policy.mkdir()
    shutil.copy(ROOT / "policy/default.yaml", policy / "policy.yaml")
    audit = tmp_path / "audit"
    audit.mkdir()
    os.chown(audit, 65532, 65532) if os.geteuid() == 0 else audit.chmod(0o777)

    port, mport = free_port(), free_port()
    pod = "tg-tableguard-0"
    args = []
    for a in ctr["args"]:
        a = str(a).replace("$(POD_NAME)", pod)
        a = {"0.0.0.0:8443": f"127.0.0.1:{port}", "0.0.0.0:9090": f"127.0.0.1:{mport}"}.get(a, a)
        args.append(a)
    assert args[0] == "serve"
    name = f"tg-image-test-{uuid.uuid4().hex[:8]}"
    mounts = []
    for i, (path, files) in enumerate(sorted(ctr["configMapMounts"].items())):
        if path == "/etc/tableguard/policy":
            continue
        d = tmp_path / f"configmap-{i}"
        d.mkdir()
        for fname, text in files.items():
            (d / fname).write_text(text)
        mounts += ["-v", f"{d}:{path}:ro"]
    podman("run", "-d", "--name", name, "--network", "host", *LIMITS, "--read-only",
           "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--env", f"POD_NAME={pod}",
           "-v", f"{policy}:/etc/tableguard/policy:ro", "-v", f"{certs}:/etc/tableguard/tls:ro",
           "-v", f"{audit}:/var/lib/tableguard/audit", *mounts, IMAGE, *args)
    c = Container(name, port, mport, certs / "ca.crt")
    c.audit = audit / f"{pod}.log"
    c.args = args
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if c.get("/readyz")[0] == 200:
                    break
            except OSError:
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            assert state == "running" and time.monotonic() < deadline, \
                f"container {state}, not ready:\n" + podman("logs", name, check=False).stderr[-2000:]
            time.sleep(0.2)
        yield c
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def test_serve_answers_a_review_and_drains_on_sigterm(served):
    status, review = served.review("validate", "validate-deny-no-trait")
    assert status == 200
    assert review["response"]["allowed"] is False
    assert "dynamodb-protection-kro" in review["response"]["status"]["message"]
    status, review = served.review("mutate", "mutate-inject-missing-traits")
    assert status == 200 and review["response"]["allowed"] is True
    assert review["response"]["patchType"] == "JSONPatch"
    # The container runs as the image's USER, not root.
    top = podman("top", served.name, "user", "huser").stdout.split()
    assert "65532" in top[2:], top
    # The audit records go where the chart's --audit-log says: the container's stdout by
    # default, else a file in the mounted directory.
    target = served.args[served.args.index("--audit-log") + 1]
    if target == "-":
        out = podman("logs", served.name).stdout
        records = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        assert any("orders-prod" in json.dumps(r) for r in records), out[-2000:]
    else:
        assert served.audit.exists() and served.audit.stat().st_size > 0

    # The chart's `helm test` pod: selftest from the same image, read-only, as its USER,
    # verifying the certificate for the Service's name against the mounted CA.
    r = podman("run", "--rm", "--network", "host", *LIMITS, "--read-only", "--cap-drop", "ALL",
               "-v", f"{served.ca.parent}:/etc/tableguard/ca:ro", IMAGE, "selftest",
               "--url", f"https://127.0.0.1:{served.port}", "--ca", "/etc/tableguard/ca/ca.crt",
               "--servername", served.host, "--namespace", "tableguard-system", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "/validate answered: denied" in r.stdout and "/mutate answered: allowed with a JSON patch" in r.stdout

    delay = int(served.args[served.args.index("--shutdown-delay") + 1])
    assert delay > 0
    podman("kill", "--signal", "TERM", served.name)
    # Readiness fails at once, while reviews are still answered during the delay (the drain).
    deadline = time.monotonic() + delay
    while served.get("/readyz")[0] == 200:
        assert time.monotonic() < deadline, "/readyz still 200 after the shutdown delay"
        time.sleep(0.1)
    assert time.monotonic() < deadline, "the delay was over before readiness failed"
    status, review = served.review("validate", "validate-deny-no-trait")
    assert status == 200 and review["response"]["allowed"] is False
    r = podman("wait", served.name, timeout=60)
    assert r.stdout.strip() == "0", "exit status " + r.stdout + podman("logs", served.name, check=False).stderr[-2000:]

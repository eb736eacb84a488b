# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the integration tier: the real tableguard binary on loopback, real TLS with
generated certificates, and AdmissionReview requests shaped exactly like the API server's."""

import base64
import copy
import http.client
import json
import os
import pathlib
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("TABLEGUARD", str(ROOT / "build" / "tableguard"))
# `make leakcheck` runs every server under valgrind through this prefix.
WRAPPER = shlex.split(os.environ.get("TABLEGUARD_WRAPPER", ""))
SHARED = ROOT.parent / "shared" / "reference"
DEFAULT_POLICY = ROOT / "policy" / "default.yaml"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, stdin=None, env=None, cwd=ROOT, timeout=120):
    """Runs one tableguard command (under TABLEGUARD_WRAPPER when set) and returns the
    CompletedProcess, in text mode. The one way the suite runs the binary for a command; servers
    start through the start_server fixture. env adds to the environment."""
    return subprocess.run([*WRAPPER, BINARY, *map(str, args)], capture_output=True, text=True,
                          input=stdin, timeout=timeout, cwd=cwd,
                          env=None if env is None else {**os.environ, **env})


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    r = run("certs", "generate", "--service", "tableguard", "--namespace", "tableguard",
            "--dns", "localhost", "--ip", "127.0.0.1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


class Server:
    """A running `tableguard serve`, spoken to over real TLS."""

    def __init__(self, proc, port, metrics_port, ca, log_path, audit_path):
        self.proc, self.port, self.metrics_port = proc, port, metrics_port
        self.ca, self.log_path, self.audit_path = ca, log_path, audit_path

    def context(self, cert=None, key=None):
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if cert:
            ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def connect(self, **kw):
        """A keep-alive HTTPS connection, as the API server's Go client opens."""
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context(**kw),
                                           timeout=30)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.connect()
        hdrs = {"Content-Type": "application/json", "Accept": "application/json, */*",
                "User-Agent": "kube-apiserver-admission"}
        hdrs.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        if own:
            conn.close()
        return resp.status, data

    def admit(self, webhook, review, conn=None):
        """POSTs a review as the API server does and returns (status, parsed body)."""
        status, data = self.request("POST", f"/{webhook}?timeout=10s", review, conn=conn)
        return status, json.loads(data)

    def plain(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        conn.request("GET", path)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data.decode()

    def log_lines(self):
        return [json.loads(l) for l in self.log_path.read_text().splitlines() if l.startswith("{")]

    def audit_records(self):
        return [json.loads(l) for l in self.audit_path.read_text().splitlines() if l]

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_ready(server, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError("tableguard exited: " + server.log_path.read_text())
        try:
            status, _ = server.plain("/healthz")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("tableguard did not become healthy: " + server.log_path.read_text())


@pytest.fixture
def start_server(tmp_path, certs):
    """Factory: start_server(policy=PATH or YAML text, audit=True, **flags) -> Server.
    Flags are given as keyword arguments with '_' for '-' (shutdown_delay=0); the server logs at
    debug unless log_level says otherwise (None: no --log-level flag)."""
    started = []

    def start(policy=None, audit=True, cert=None, key=None, env=None, **flags):
        if policy is None:
            policy_path = DEFAULT_POLICY
        elif isinstance(policy, pathlib.Path):
            policy_path = policy
        else:
            policy_path = tmp_path / f"policy-{len(started)}.yaml"
            policy_path.write_text(policy)
        # A port free_port() saw free can be taken before the server binds it (test clients'
        # own ephemeral ports come from the same range): then start again on fresh ports.
        for attempt in range(5):
            server = launch(policy_path, audit, cert, key, env, flags)
            try:
                wait_ready(server, timeout=60 if WRAPPER else 20)
                return server
            except AssertionError:
                if attempt == 4 or server.proc.poll() is None or \
                        "address in use" not in server.log_path.read_text():
                    raise

    def launch(policy_path, audit, cert, key, env, flags):
        port, metrics_port = free_port(), free_port()
        log_path = tmp_path / f"server-{len(started)}.log"
        audit_path = tmp_path / f"audit-{len(started)}.log"
        args = [*WRAPPER, BINARY, "serve", "--policy", str(policy_path),
                "--tls-cert", str(cert or certs / "tls.crt"),
                "--tls-key", str(key or certs / "tls.key"),
                "--listen", f"127.0.0.1:{port}",
                "--metrics-listen", f"127.0.0.1:{metrics_port}",
                "--shutdown-delay", "0"]
        # log_level=None leaves the flag out (the environment's level then counts).
        level = flags.pop("log_level", "debug")
        if level is not None:
            args += ["--log-level", level]
        if audit:
            args += ["--audit-log", str(audit_path)]
        for k, v in flags.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        logf = open(log_path, "w")
        proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
        logf.close()
        server = Server(proc, port, metrics_port, certs / "ca.crt", log_path, audit_path)
        started.append(server)
        return server

    yield start
    for s in started:
        code = s.stop()
        # Under valgrind a leak or memory error turns into exit code 99.
        assert code != 99, "valgrind reported errors:\n" + s.log_path.read_text()


def application(components, name="orders", namespace="shop", **meta):
    """A KubeVela Application as the API server holds it."""
    md = {"name": name, "namespace": namespace, "creationTimestamp": None}
    md.update(meta)
    return {"apiVersion": "core.oam.dev/v1beta1", "kind": "Application", "metadata": md,
            "spec": {"components": components}}


def table(name, table_name=None, traits=None, **props):
    """An aws-dynamodb-kro component; traits=None leaves the key out."""
    c = {"name": name, "type": "aws-dynamodb-kro",
         "properties": {"region": "us-east-1", **props}}
    if table_name is not None:
        c["properties"]["tableName"] = table_name
    if traits is not None:
        c["traits"] = traits
    return c


def protection(**props):
    return {"type": "dynamodb-protection-kro", "properties": props}


def review(obj, operation="CREATE", old=None, dry_run=False, uid=None, namespace=None,
           username="alice@example.com", groups=("system:authenticated",)):
    """An AdmissionReview v1 request exactly as kube-apiserver serialises it."""
    ns = namespace if namespace is not None else (obj or old or {}).get("metadata", {}).get(
        "namespace", "")
    name = (obj or old or {}).get("metadata", {}).get("name", "")
    gvk = {"group": "core.oam.dev", "version": "v1beta1", "kind": "Application"}
    gvr = {"group": "core.oam.dev", "version": "v1beta1", "resource": "applications"}
    opts = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions",
            "DELETE": "DeleteOptions"}[operation]
    req = {"uid": uid or str(uuid.uuid4()), "kind": gvk, "resource": gvr, "requestKind": gvk,
           "requestResource": gvr, "name": name, "namespace": ns, "operation": operation,
           "userInfo": {"username": username, "uid": "4f3c2a", "groups": list(groups)},
           "object": copy.deepcopy(obj), "oldObject": copy.deepcopy(old), "dryRun": dry_run,
           "options": {"kind": opts, "apiVersion": "meta.k8s.io/v1"}}
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req}


def decode_patch(response):
    """Checks the API server's rules for a patch and returns the operations (or [])."""
    r = response["response"]
    assert ("patch" in r) == ("patchType" in r), "patch and patchType go together"
    if "patch" not in r:
        return []
    assert r["patchType"] == "JSONPatch"
    raw = base64.b64decode(r["patch"], validate=True)
    assert base64.b64encode(raw).decode() == r["patch"], "standard base64 with padding"
    ops = json.loads(raw)
    assert isinstance(ops, list)
    for op in ops:
        assert op["op"] != "test", "never test operations"
    return ops


def check_envelope(response, review_):
    """The API server treats anything else as a broken webhook."""
    assert response["apiVersion"] == "admission.k8s.io/v1"
    assert response["kind"] == "AdmissionReview"
    assert response["response"]["uid"] == review_["request"]["uid"]
    assert isinstance(response["response"]["allowed"], bool)


# tests/integration/webhookclient: a client that calls tableguard as the API server's webhook
# client does (Go's net/http Transport), built with Debian's golang-go.
WEBHOOKCLIENT_SRC = ROOT / "tests" / "integration" / "webhookclient" / "main.go"


@pytest.fixture(scope="session")
def webhookclient(tmp_path_factory):
    if shutil.which("go") is None:
        pytest.skip("golang-go is not installed (make deps-test installs it)")
    out = tmp_path_factory.mktemp("webhookclient")
    cache = ROOT / "build" / "go"  # kept between runs: compiling net/http takes a minute
    env = {**os.environ, "GOCACHE": str(cache / "cache"), "GOPATH": str(cache / "path"),
           "CGO_ENABLED": "0"}
    r = subprocess.run(["go", "build", "-o", str(out / "webhookclient"), str(WEBHOOKCLIENT_SRC)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return out / "webhookclient"

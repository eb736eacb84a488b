# SPDX-License-Identifier: Apache-2.0
"""The commands that call a server instead of serving: `selftest` (the chart's `helm test` hook:
a real review through the Service) and `webhooks delete` (the chart's pre-delete Job: the
Kubernetes API with the pod's service account). Both speak TLS to a real socket; the API server
is a stand-in that records what it receives and answers as the API server does."""

import http.server
import json
import ssl
import threading

import pytest

from conftest import run


@pytest.fixture
def fake_server(certs):
    """An HTTPS server on loopback answering from a table {(method, path): (status, body)};
    yields (port, requests list)."""
    requests, answers = [], {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                             "body": body})
            status, data = answers.get((self.command, self.path.split("?")[0]), (404, {"kind": "Status", "code": 404}))
            if callable(data):
                data = data(body)
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status == 202:  # as Go's net/http does for a body of unknown length
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw))
            else:
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        do_GET = do_POST = do_DELETE = handle_any

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(certs / "tls.crt"), str(certs / "tls.key"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.answers, srv.requests = answers, requests
    yield srv
    srv.shutdown()
    srv.server_close()


# --- selftest ---------------------------------------------------------------------------------

def test_selftest_sends_real_reviews_and_reports_the_decisions(start_server, certs):
    server = start_server()
    r = run("selftest", "--url", f"https://127.0.0.1:{server.port}", "--ca", str(certs / "ca.crt"),
            "--servername", "localhost", "--namespace", "team-a")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "readyz answered 200" in r.stdout
    # The shipped policy injects the trait and denies a prod table without it.
    assert "/mutate answered: allowed with a JSON patch" in r.stdout
    assert "/validate answered: denied: " in r.stdout and "tableguard-selftest-prod" in r.stdout
    # The server saw reviews the API server could have sent: audited, as dry runs, in team-a.
    records = [json.loads(l) for l in server.audit_path.read_text().splitlines() if l]
    selftest = [x for x in records if "tableguard-selftest" in json.dumps(x)]
    assert len(selftest) == 2, records
    assert all("team-a" in json.dumps(x) for x in selftest)


def test_selftest_refuses_a_server_its_ca_does_not_trust(start_server, certs, tmp_path):
    server = start_server()
    other = tmp_path / "other"
    assert run("certs", "generate", "--service", "x", "--namespace", "y", "--out", str(other)).returncode == 0
    r = run("selftest", "--url", f"https://127.0.0.1:{server.port}", "--ca", str(other / "ca.crt"),
            "--servername", "localhost")
    assert r.returncode == 1
    assert "not trusted" in r.stderr, r.stderr


def test_selftest_checks_the_name_on_the_certificate(start_server, certs):
    server = start_server()
    r = run("selftest", "--url", f"https://127.0.0.1:{server.port}", "--ca", str(certs / "ca.crt"),
            "--servername", "impostor.example.com")
    assert r.returncode == 1
    assert "impostor.example.com" in r.stderr and "not trusted" in r.stderr, r.stderr


def test_selftest_fails_on_an_answer_with_the_wrong_uid(fake_server, certs):
    fake_server.answers[("GET", "/readyz")] = (200, "ok")
    wrong = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
             "response": {"uid": "someone-else", "allowed": True}}
    fake_server.answers[("POST", "/mutate")] = (200, wrong)
    fake_server.answers[("POST", "/validate")] = (200, lambda body: {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": json.loads(body)["request"]["uid"], "allowed": True}})
    r = run("selftest", "--url", f"https://localhost:{fake_server.server_address[1]}/",
            "--ca", str(certs / "ca.crt"))
    assert r.returncode == 1
    assert "/mutate: response.uid is not the request's uid" in r.stderr, r.stderr
    assert "ok    /validate answered: allowed" in r.stdout
    posted = [q for q in fake_server.requests if q["method"] == "POST"]
    assert [q["path"] for q in posted] == ["/mutate?timeout=10s", "/validate?timeout=10s"]
    review = json.loads(posted[0]["body"])
    assert review["request"]["operation"] == "CREATE" and review["request"]["dryRun"] is True
    assert review["request"]["object"]["kind"] == "Application"


def test_selftest_reports_an_unreachable_server(certs):
    from conftest import free_port
    r = run("selftest", "--url", f"https://127.0.0.1:{free_port()}", "--ca", str(certs / "ca.crt"))
    assert r.returncode == 1
    assert "connect to 127.0.0.1" in r.stderr, r.stderr


@pytest.mark.parametrize("args", [[], ["--url", "https://x"], ["--ca", "x"], ["--url", "http://x", "--ca", "x"],
                                  ["--bogus"], ["--url", "https://x", "--ca", "x", "extra"]])
def test_selftest_usage_errors(args):
    r = run("selftest", *args)
    if args[:1] == ["--url"] and args[1].startswith("http://"):
        assert r.returncode == 1 and "is not https://" in r.stderr
    else:
        assert r.returncode == 2, r.stderr
        assert "usage: tableguard selftest" in r.stderr


def test_selftest_help():
    r = run("selftest", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: tableguard selftest")


# --- webhooks delete ------------------------------------------------------------------------------

BASE = "/apis/admissionregistration.k8s.io/v1"


def status(code, reason):
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure" if code >= 400 else "Success",
            "reason": reason, "code": code}


@pytest.fixture
def token(tmp_path):
    t = tmp_path / "token"
    t.write_text("eyJhbGciOiJSUzI1NiJ9.sa-token\n")
    return t


def test_webhooks_delete_removes_both_configurations(fake_server, certs, token):
    fake_server.answers[("DELETE", f"{BASE}/mutatingwebhookconfigurations/tg-tableguard")] = (200, status(200, ""))
    fake_server.answers[("DELETE", f"{BASE}/validatingwebhookconfigurations/tg-tableguard")] = (202, status(202, ""))
    r = run("webhooks", "delete", "--name", "tg-tableguard", "--api", f"https://localhost:{fake_server.server_address[1]}",
            "--token", str(token), "--ca", str(certs / "ca.crt"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["MutatingWebhookConfiguration tg-tableguard deleted",
                                     "ValidatingWebhookConfiguration tg-tableguard deleted"]
    assert [(q["method"], q["path"]) for q in fake_server.requests] == [
        ("DELETE", f"{BASE}/mutatingwebhookconfigurations/tg-tableguard"),
        ("DELETE", f"{BASE}/validatingwebhookconfigurations/tg-tableguard")]
    assert all(q["headers"]["Authorization"] == "Bearer eyJhbGciOiJSUzI1NiJ9.sa-token" for q in fake_server.requests)


def test_webhooks_delete_in_cluster_defaults_and_already_gone(fake_server, certs, token):
    # In a pod: the API server from KUBERNETES_SERVICE_HOST/PORT; nothing to delete is success.
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(fake_server.server_address[1]),
           "PATH": "/usr/bin:/bin"}
    r = run("webhooks", "delete", "--name", "tg-tableguard", "--token", str(token), "--ca", str(certs / "ca.crt"),
            env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["MutatingWebhookConfiguration tg-tableguard already gone",
                                     "ValidatingWebhookConfiguration tg-tableguard already gone"]


def test_webhooks_delete_fails_when_forbidden(fake_server, certs, token):
    fake_server.answers[("DELETE", f"{BASE}/mutatingwebhookconfigurations/tg-tableguard")] = (200, status(200, ""))
    fake_server.answers[("DELETE", f"{BASE}/validatingwebhookconfigurations/tg-tableguard")] = (
        403, status(403, "Forbidden"))
    r = run("webhooks", "delete", "--name", "tg-tableguard", "--api", f"https://localhost:{fake_server.server_address[1]}",
            "--token", str(token), "--ca", str(certs / "ca.crt"))
    assert r.returncode == 1
    assert "ValidatingWebhookConfiguration tg-tableguard: HTTP 403" in r.stderr


def test_webhooks_delete_usage(token):
    assert run("webhooks", "delete", "--help").returncode == 0
    r = run("webhooks", "delete", "--token", str(token))
    assert r.returncode == 2 and "--name NAME" in r.stderr
    r = run("webhooks", "delete", "--name", "Bad/Name", "--api", "https://x", "--token", str(token))
    assert r.returncode == 2
    r = run("webhooks", "delete", "--name", "x", "--token", str(token), env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "KUBERNETES_SERVICE_HOST" in r.stderr

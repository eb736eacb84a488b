# SPDX-License-Identifier: Apache-2.0
"""The Prometheus endpoint: valid exposition text (promtool), counters that move with each
webhook, operation and decision, the latency histogram, in-flight requests, rejections, policy
reloads, audit records, the certificate's expiry, build and process metrics, and no
high-cardinality labels. Also /healthz and /readyz on both listeners."""

import re
import shutil
import signal
import ssl
import subprocess
import time

import pytest
import yaml

from conftest import DEFAULT_POLICY, application, protection, review, run, table

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
BUCKETS = ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
           "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
# Every label the exposition may use, with the values each may take (None: any of a fixed few).
ALLOWED_LABELS = {
    "webhook": {"mutate", "validate"},
    "operation": {"CREATE", "UPDATE", "DELETE", "CONNECT", "unknown"},
    "decision": {"allow", "patch", "deny", "invalid", "error"},
    "reason": {"body_too_large", "bad_request", "method_not_allowed", "not_found",
               "client_certificate", "audit_failure", "body_memory", "request_timeout"},
    "result": {"success", "failure"},
    "le": set(BUCKETS),
    "version": None,
    "revision": None,
}


def parse(text):
    """{(name, frozenset of (label, value)): float} and {name: type} from exposition text."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"unparseable line {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        assert key not in samples, f"duplicate series {line!r}"
        samples[key] = float(m.group(3))
    return samples, types


def scrape(server):
    status, text = server.plain("/metrics")
    assert status == 200
    return parse(text)[0]


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples, webhook, operation, decision):
    return value(samples, "tableguard_admission_requests_total", webhook=webhook,
                 operation=operation, decision=decision)


def test_exposition_passes_promtool(start_server):
    server = start_server()
    server.admit("mutate", review(application([table("orders", "orders-prod")])))
    server.admit("validate", review(application([table("orders", "orders-prod")])))
    server.request("POST", "/validate?timeout=10s", b"not json")
    conn = server.connect()
    conn.request("GET", "/metrics")
    conn.getresponse().read()
    # The Content-Type Prometheus negotiates for the text format.
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", server.metrics_port, timeout=10)
    c.request("GET", "/metrics")
    resp = c.getresponse()
    text = resp.read()
    assert resp.status == 200
    assert resp.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    # promtool's linter is silent when the text is clean.
    assert r.stdout.strip() == b"" and r.stderr.strip() == b"", r.stdout + r.stderr
    _, types = parse(text.decode())
    for name in ["tableguard_admission_requests_total", "tableguard_admission_request_duration_seconds",
                 "tableguard_admission_requests_in_flight", "tableguard_http_rejected_total",
                 "tableguard_policy_rules", "tableguard_policy_reload_total",
                 "tableguard_policy_last_reload_successful",
                 "tableguard_policy_last_reload_success_timestamp_seconds",
                 "tableguard_audit_records_total", "tableguard_audit_write_errors_total",
                 "tableguard_tls_certificate_expiry_timestamp_seconds", "tableguard_build_info",
                 "process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                 "process_start_time_seconds"]:
        assert name in types, name
    assert types["tableguard_admission_request_duration_seconds"] == "histogram"
    for name, kind in types.items():
        assert (kind == "counter") == name.endswith("_total"), name


def test_counters_move_per_webhook_operation_and_decision(start_server):
    server = start_server()
    before = scrape(server)
    prod = application([table("orders", "orders-prod")])
    fixed = application([table("orders", "orders-prod", traits=[
        protection(deletionProtection=True, pointInTimeRecovery=True)])])
    expected = {
        ("mutate", "CREATE", "patch"): [review(prod)] * 3,
        ("mutate", "UPDATE", "allow"): [review(fixed, operation="UPDATE", old=fixed)],
        ("mutate", "DELETE", "allow"): [review(None, operation="DELETE", old=fixed)],
        ("validate", "CREATE", "deny"): [review(prod)] * 2,
        ("validate", "CREATE", "allow"): [review(fixed)],
        ("validate", "UPDATE", "deny"): [review(prod, operation="UPDATE", old=fixed)],
    }
    for (hook, _, _), reviews in expected.items():
        for rev in reviews:
            assert server.admit(hook, rev)[0] == 200
    # A body that is no review is counted as invalid, and as a bad request.
    assert server.request("POST", "/mutate?timeout=10s", b"{")[0] == 400
    after = scrape(server)
    for (hook, op, decision), reviews in expected.items():
        got = requests(after, hook, op, decision) - requests(before, hook, op, decision)
        assert got == len(reviews), (hook, op, decision, got)
    assert requests(after, "mutate", "unknown", "invalid") == 1
    assert value(after, "tableguard_http_rejected_total", reason="bad_request") == 1
    total = sum(v for (n, _), v in after.items() if n == "tableguard_admission_requests_total")
    assert total == sum(len(r) for r in expected.values()) + 1
    # Each answered review is one audit record.
    assert value(after, "tableguard_audit_records_total") == total - 1
    assert value(after, "tableguard_audit_write_errors_total") == 0


def test_histogram_buckets_from_100us_to_10s(start_server):
    server = start_server()
    for _ in range(5):
        server.admit("validate", review(application([table("orders", "orders-dev")])))
    samples = scrape(server)
    for hook, n in (("validate", 5), ("mutate", 0)):
        series = {dict(l)["le"]: v for (name, l), v in samples.items()
                  if name == "tableguard_admission_request_duration_seconds_bucket"
                  and dict(l)["webhook"] == hook}
        assert sorted(series, key=lambda le: float(le)) == BUCKETS
        counts = [series[le] for le in BUCKETS]
        assert counts == sorted(counts), "buckets are cumulative"
        assert counts[-1] == n
        assert value(samples, "tableguard_admission_request_duration_seconds_count",
                     webhook=hook) == n
        total = value(samples, "tableguard_admission_request_duration_seconds_sum", webhook=hook)
        assert (total > 0) == (n > 0) and total <= n * 10
    # A validate on loopback is answered well under a second.
    assert value(samples, "tableguard_admission_request_duration_seconds_bucket",
                 webhook="validate", le="1") == 5


def test_in_flight_counts_a_request_being_read(start_server):
    server = start_server()
    assert value(scrape(server), "tableguard_admission_requests_in_flight") == 0
    raw = server.context().wrap_socket(__import__("socket").create_connection(
        ("127.0.0.1", server.port)), server_hostname="localhost")
    raw.sendall(b"POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/json\r\nContent-Length: 100\r\n\r\n{")
    deadline = time.time() + 10
    while value(scrape(server), "tableguard_admission_requests_in_flight") != 1:
        assert time.time() < deadline, "in-flight never reached 1"
        time.sleep(0.05)
    raw.sendall(b" " * 99)
    raw.recv(4096)
    raw.close()
    deadline = time.time() + 10
    while value(scrape(server), "tableguard_admission_requests_in_flight") != 0:
        assert time.time() < deadline, "in-flight never went back to 0"
        time.sleep(0.05)


def test_rejections_by_reason(start_server):
    server = start_server(max_body=4096)
    server.request("POST", "/nowhere", b"{}")
    server.request("GET", "/mutate")
    server.request("PUT", "/validate", b"{}")
    server.request("POST", "/mutate?timeout=10s", b" " * 5000)
    server.request("POST", "/mutate?timeout=10s", b"[]")
    s = scrape(server)
    for reason, n in (("not_found", 1), ("method_not_allowed", 2), ("body_too_large", 1),
                      ("bad_request", 1), ("client_certificate", 0), ("audit_failure", 0)):
        assert value(s, "tableguard_http_rejected_total", reason=reason) == n, reason


def test_no_high_cardinality_labels(start_server):
    server = start_server()
    for i in range(5):
        rev = review(application([table(f"secret-comp-{i}", f"secret-table-{i}-prod")],
                                 name=f"secret-app-{i}", namespace=f"secret-ns-{i}"),
                     username=f"secret-user-{i}@example.com", groups=[f"secret-group-{i}"])
        server.admit("mutate", rev)
        server.admit("validate", rev)
    _, text = server.plain("/metrics")
    assert "secret" not in text
    samples, _ = parse(text)
    for (name, labels), _ in samples.items():
        for k, v in labels:
            assert k in ALLOWED_LABELS, (name, k)
            if ALLOWED_LABELS[k] is not None:
                assert v in ALLOWED_LABELS[k], (name, k, v)
    # A fixed number of series, whatever the traffic.
    # 112 + the three body-budget gauges and its reason + the two exceptions reload results;
    # exception uses add one series per exception name, at most 64 (none here).
    assert len(samples) <= 118


def shipped_rules():
    """The number of rules in the shipped policy, as the gauge must report it."""
    return len(yaml.safe_load(DEFAULT_POLICY.read_text())["spec"]["rules"])


def test_build_process_certificate_and_policy_gauges(start_server, certs):
    t0 = time.time()
    server = start_server()
    s = scrape(server)
    version = run("version").stdout.split()[1]
    info = [dict(l) for (n, l), v in s.items() if n == "tableguard_build_info" and v == 1]
    assert len(info) == 1 and info[0]["version"] == version and info[0]["revision"]
    assert value(s, "process_cpu_seconds_total") > 0
    assert value(s, "process_resident_memory_bytes") > 1 << 20
    assert value(s, "process_virtual_memory_bytes") >= value(s, "process_resident_memory_bytes")
    assert 3 <= value(s, "process_open_fds") <= value(s, "process_max_fds")
    assert t0 - 30 < value(s, "process_start_time_seconds") <= time.time()
    not_after = ssl.cert_time_to_seconds(ssl._ssl._test_decode_cert(
        str(certs / "tls.crt"))["notAfter"])
    assert value(s, "tableguard_tls_certificate_expiry_timestamp_seconds") == not_after
    assert value(s, "tableguard_policy_rules") == shipped_rules()
    assert value(s, "tableguard_policy_last_reload_successful") == 1
    assert t0 - 30 < value(s, "tableguard_policy_last_reload_success_timestamp_seconds") <= \
        time.time()


def test_first_policy_load_is_not_a_reload(start_server):
    # docs/operations.md: the counter counts loads after the first; the timestamp counts it.
    before = time.time()
    s = scrape(start_server())
    assert ("tableguard_policy_reload_total", frozenset({"result": "success"}.items())) in s
    assert value(s, "tableguard_policy_reload_total", result="success") == 0
    assert value(s, "tableguard_policy_reload_total", result="failure") == 0
    assert value(s, "tableguard_policy_last_reload_successful") == 1
    assert value(s, "tableguard_policy_last_reload_success_timestamp_seconds") >= int(before) - 1


def test_policy_reload_metrics(start_server, tmp_path):
    policy = tmp_path / "policy.yaml"
    shutil.copy(DEFAULT_POLICY, policy)
    server = start_server(policy=policy, reload_interval=1)
    base = scrape(server)
    ok0 = value(base, "tableguard_policy_reload_total", result="success")

    def wait_for(cond, what):
        deadline = time.time() + 20
        while time.time() < deadline:
            s = scrape(server)
            if cond(s):
                return s
            time.sleep(0.1)
        raise AssertionError(what)

    policy.write_text(DEFAULT_POLICY.read_text().replace("  rules:\n", "  rules:\n"
                      "    - name: extra\n      tables: [\"*-x\"]\n      require:\n"
                      "        deletionProtection: true\n      action: audit\n"))
    server.proc.send_signal(signal.SIGHUP)
    rules = shipped_rules() + 1
    s = wait_for(lambda s: value(s, "tableguard_policy_rules") == rules, "reload not seen")
    assert value(s, "tableguard_policy_reload_total", result="success") > ok0
    assert value(s, "tableguard_policy_last_reload_successful") == 1
    policy.write_text("apiVersion: tableguard.io/v1\nkind: Nope\n")
    server.proc.send_signal(signal.SIGHUP)
    s = wait_for(lambda s: value(s, "tableguard_policy_last_reload_successful") == 0,
                 "failed reload not seen")
    assert value(s, "tableguard_policy_reload_total", result="failure") >= 1
    assert value(s, "tableguard_policy_rules") == rules, "the last good policy keeps serving"
    status, body = server.plain("/readyz")
    assert status == 200 and "reload failed" in body


@pytest.mark.parametrize("listener", ["https", "plain"])
def test_health_on_both_listeners(start_server, listener):
    server = start_server()
    if listener == "https":
        get = lambda p: server.request("GET", p)
    else:
        get = server.plain
    status, body = get("/healthz")
    assert status == 200 and "ok" in str(body)
    status, body = get("/readyz")
    assert status == 200 and "ok" in str(body)

# SPDX-License-Identifier: Apache-2.0
"""Exceptions with the real binary: `serve --exceptions` over TLS (a waived rule and one that is
not on the same table, a table outside the globs, the warning, auditAnnotations, the audit
record, the metric), an exception that expires while the server runs and stops applying within
a second with no reload, hot reload with last-known-good, startup errors, `policy lint
--exceptions`, `check --exceptions` and a `test` suite naming an exceptions file."""

import datetime
import json
import time

import pytest
import yaml

from conftest import DEFAULT_POLICY, ROOT, application, protection, review, run, table


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def exceptions_doc(*entries, name="approved"):
    return {"apiVersion": "tableguard.io/v1", "kind": "ProtectionExceptions",
            "metadata": {"name": name}, "spec": {"exceptions": list(entries)}}


def entry(name="retire-orders", expires=None, tables=("orders-prod",),
          rules=("prod-deletion-protection",), **extra):
    e = {"name": name, "ticket": "CHG-1234", "approvedBy": "jane@example.com",
         "reason": "orders moved to orders-v2-prod",
         "expires": expires or rfc3339(time.time() + 7 * 86400),
         "tables": list(tables), "rules": list(rules)}
    e.update(extra)
    return e


def write(path, doc):
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def unprotected_orders():
    """orders-prod with deletion protection and PITR off; users-prod with deletion protection
    off: three violations, two of the deny rule."""
    return application([
        table("orders", "orders-prod",
              traits=[protection(deletionProtection=False, pointInTimeRecovery=False)]),
        table("users", "users-prod", traits=[protection(deletionProtection=False)]),
    ])


# ---- policy lint --exceptions ------------------------------------------------------------------

def test_lint_reports_each_problem_with_file_line_and_name(tmp_path):
    now = time.time()
    x = write(tmp_path / "x.yaml", exceptions_doc(
        entry("fine"),
        entry("typo", rules=["prod-deletion-protecton"]),
        entry("dead", tables=["orders-dev"]),
        entry("old", expires=rfc3339(now - 3600)),
        entry("far", expires=rfc3339(now + 60 * 86400))))
    r = run("policy", "lint", "--exceptions", x, DEFAULT_POLICY)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    text = yaml.safe_load(x.read_text())
    line_of = {}
    for i, l in enumerate(x.read_text().splitlines(), 1):
        if l.startswith("  - name: "):
            line_of[l.split(": ", 1)[1]] = i
    assert set(line_of) == {e["name"] for e in text["spec"]["exceptions"]}
    expect = [
        f'{x}:{line_of["typo"]}: exception "typo": unknown rule "prod-deletion-protecton" '
        '(did you mean "prod-deletion-protection"?)',
        f'{x}:{line_of["dead"]}: exception "dead": tables pattern "orders-dev" can never match',
        f'{x}:{line_of["old"]}: warning: exception "old": expired at',
        f'{x}:{line_of["far"]}: exception "far": expires ',
    ]
    for want in expect:
        assert any(l.startswith(want) for l in lines), (want, lines)
    assert not any('"fine"' in l for l in lines)
    assert f"{DEFAULT_POLICY}: policy OK" not in r.stdout


def test_lint_expired_is_a_warning_that_fails_only_with_strict(tmp_path):
    x = write(tmp_path / "x.yaml", exceptions_doc(entry("old", expires="2020-01-01T00:00:00Z")))
    r = run("policy", "lint", "--exceptions", x, DEFAULT_POLICY)
    assert r.returncode == 0 and f"{DEFAULT_POLICY}: policy OK" in r.stdout
    assert 'warning: exception "old": expired at 2020-01-01T00:00:00Z' in r.stderr
    assert run("policy", "lint", "--strict", "--exceptions", x, DEFAULT_POLICY).returncode == 1


def test_lint_exceptions_that_do_not_load(tmp_path):
    x = tmp_path / "x.yaml"
    x.write_text("apiVersion: tableguard.io/v1\nkind: ProtectionExceptions\nmetadata: {name: a}\n"
                 "spec:\n  exceptions:\n    - name: a\n      ticket: T\n      approvedBy: b\n"
                 "      expires: 2026-12-05 00:00\n      tables: [x]\n      rules: [r]\n")
    r = run("policy", "lint", "--exceptions", x, DEFAULT_POLICY)
    assert r.returncode == 1
    assert (f'{x}:9:16: exception "a": "expires" "2026-12-05 00:00" is not an RFC 3339 time'
            in r.stderr)
    assert run("policy", "lint", "--exceptions", tmp_path / "none.yaml",
              DEFAULT_POLICY).returncode == 1
    assert run("policy", "lint", "--exceptions").returncode == 2


def test_lint_warns_about_near_misses_of_the_standard_names(tmp_path):
    text = DEFAULT_POLICY.read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(text.replace("type: dynamodb-protection-kro", "type: dynamodb-protecton-kro")
                    .replace("types: [aws-dynamodb-kro]", "types: [aws-dynamodb-kr0]"))
    r = run("policy", "lint", typo)
    assert r.returncode == 0 and f"{typo}: policy OK" in r.stdout
    assert (f'{typo}: warning: trait.type "dynamodb-protecton-kro" is not the standard '
            '"dynamodb-protection-kro"' in r.stderr)
    assert (f'{typo}: warning: components.types "aws-dynamodb-kr0" is not the standard '
            '"aws-dynamodb-kro"' in r.stderr)
    assert run("policy", "lint", "--strict", typo).returncode == 1
    # The shipped policy and the examples are clean even under --strict.
    examples = sorted((ROOT / "policy" / "examples").glob("*.yaml"))
    r = run("policy", "lint", "--strict", DEFAULT_POLICY, *examples)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    # A name far from the standard ones is someone's own trait: no warning.
    own = tmp_path / "own.yaml"
    own.write_text(text.replace("type: dynamodb-protection-kro", "type: acme-table-guard"))
    r = run("policy", "lint", "--strict", own)
    assert r.returncode == 0 and "warning" not in r.stderr


# ---- serve --exceptions: startup ---------------------------------------------------------------

def test_startup_refuses_a_missing_or_broken_exceptions_file(tmp_path, certs):
    def serve(path):
        return run("serve", "--policy", DEFAULT_POLICY, "--tls-cert", certs / "tls.crt",
                   "--tls-key", certs / "tls.key", "--listen", "127.0.0.1:0", "--metrics-listen",
                   "off", "--exceptions", path, timeout=60)
    r = serve(tmp_path / "missing.yaml")
    assert r.returncode == 1 and "cannot open" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: tableguard.io/v1\nkind: ProtectionExceptions\n"
                   "metadata: {name: a}\nspec: {exceptions: [{name: a}]}\n")
    r = serve(bad)
    assert r.returncode == 1
    assert f'{bad}:4:21: exception "a": missing required key "ticket"' in r.stderr


# ---- serve --exceptions: answers over TLS ------------------------------------------------------

def metric(server, name, **labels):
    _, text = server.plain("/metrics")
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def test_waives_one_rule_but_not_another_and_not_outside_its_globs(start_server, tmp_path):
    x = write(tmp_path / "x.yaml", exceptions_doc(entry(applications=["orders"],
                                                        namespaces=["shop"])))
    server = start_server(exceptions=x)
    status, body = server.admit("validate", review(unprotected_orders()))
    resp = body["response"]
    assert status == 200 and not resp["allowed"]
    message = resp["status"]["message"]
    # The waived finding is gone from the denial; the other deny (users-prod, outside the
    # exception's tables) stays, and so does the warn rule on the waived table.
    assert "1 violation" in message and 'table "users-prod"' in message
    assert 'table "orders-prod": rule "prod-deletion-protection"' not in message
    expires = x.read_text().split("expires: '")[1].split("'")[0]
    assert (f'exception retire-orders (CHG-1234, expires {expires}) waives '
            'prod-deletion-protection on table "orders-prod"') in resp["warnings"]
    assert any("pointInTimeRecovery should be true" in w for w in resp["warnings"])
    ann = resp["auditAnnotations"]
    assert ann["exceptions"] == "retire-orders"
    # users-prod still fails the deny rule; orders-prod the warn rule.
    assert set(ann["rules"].split(",")) == {"prod-deletion-protection",
                                           "prod-point-in-time-recovery"}
    record = [r for r in server.audit_records() if r.get("webhook") == "validate"][-1]
    waived = [r for r in record["rules"] if "exception" in r]
    assert len(waived) == 1 and waived[0]["table"] == "orders-prod"
    assert waived[0]["exception"] == {"name": "retire-orders", "ticket": "CHG-1234",
                                      "approvedBy": "jane@example.com", "expires": expires,
                                      "reason": "orders moved to orders-v2-prod"}
    assert all("exception" not in r for r in record["rules"] if r["table"] == "users-prod")
    assert metric(server, "tableguard_exception_uses_total", exception="retire-orders") == 1
    # Another namespace or Application is outside the exception: denied for both tables.
    other = unprotected_orders()
    other["metadata"]["name"] = "billing"
    status, body = server.admit("validate", review(other))
    assert "2 violations" in body["response"]["status"]["message"]
    assert "exceptions" not in body["response"]["auditAnnotations"]
    # Only users-prod fixed: the waived violation alone leaves the request allowed.
    fixed = unprotected_orders()
    fixed["spec"]["components"][1]["traits"][0]["properties"]["deletionProtection"] = True
    fixed["spec"]["components"][0]["traits"][0]["properties"]["pointInTimeRecovery"] = True
    status, body = server.admit("validate", review(fixed))
    assert body["response"]["allowed"] is True
    assert body["response"]["auditAnnotations"]["decision"] == "allow"
    assert metric(server, "tableguard_exception_uses_total", exception="retire-orders") == 2


def test_an_exception_expires_while_the_server_runs(start_server, tmp_path):
    """Stops applying within a second of its time, with no reload."""
    # Room for a slow start on a loaded machine; the loop below starts 1.5 s before the expiry.
    expires = int(time.time()) + 8
    x = write(tmp_path / "x.yaml", exceptions_doc(entry(expires=rfc3339(expires))))
    server = start_server(exceptions=x, reload_interval=3600)
    time.sleep(max(0.0, expires - 1.5 - time.time()))
    app = application([table("orders", "orders-prod",
                             traits=[protection(deletionProtection=False)])])
    conn = server.connect()
    seen = []
    while time.time() < expires + 1.5:
        t = time.time()
        _, body = server.admit("validate", review(app), conn=conn)
        seen.append((t, time.time(), body["response"]["allowed"]))
        time.sleep(0.05)
    conn.close()
    # Allowed (waived) before its second; denied from it on, at most a second late. A request
    # is judged between its sending and its answer: allowed ones were sent before the expiry,
    # denied ones answered after it, and every one sent after it is denied.
    assert any(allowed for sent, _, allowed in seen if sent < expires - 0.5)
    assert all(sent < expires + 0.01 for sent, _, allowed in seen if allowed)
    assert all(answered >= expires - 0.01 for _, answered, allowed in seen if not allowed)
    assert all(not allowed for sent, _, allowed in seen if sent >= expires)
    assert any(not allowed for sent, _, allowed in seen if expires <= sent < expires + 1.0)
    assert not any("exceptions reloaded" in json.dumps(l) for l in server.log_lines())


def test_reload_keeps_the_last_good_exceptions(start_server, tmp_path):
    x = write(tmp_path / "x.yaml", exceptions_doc())
    server = start_server(exceptions=x, reload_interval=1)
    app = application([table("orders", "orders-prod",
                             traits=[protection(deletionProtection=False)])])

    def allowed():
        return server.admit("validate", review(app))[1]["response"]["allowed"]

    def wait_for(cond, what):
        deadline = time.time() + 10
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.1)
        raise AssertionError(what)

    assert not allowed()
    write(x, exceptions_doc(entry()))
    wait_for(allowed, "the new exception was not loaded")
    assert metric(server, "tableguard_exceptions_reload_total", result="success") >= 2
    x.write_text(x.read_text().replace("expires: '", "expires: 'soon "))
    wait_for(lambda: "exceptions reload failed" in server.plain("/readyz")[1],
             "the failed reload was not shown")
    status, body = server.plain("/readyz")
    assert status == 200 and f"{x}:" in body and "is not an RFC 3339 time" in body
    assert allowed(), "the last good exceptions keep serving"
    assert metric(server, "tableguard_exceptions_reload_total", result="failure") >= 1
    assert any(l.get("msg", "").startswith("exceptions reload failed")
               for l in server.log_lines())
    write(x, exceptions_doc(entry(tables=["users-prod"])))
    wait_for(lambda: not allowed(), "the fixed file was not loaded")
    assert "reload failed" not in server.plain("/readyz")[1]


# ---- check --exceptions, and test suites that name one -----------------------------------------

def test_check_applies_exceptions_at_the_current_time(tmp_path):
    app = write(tmp_path / "app.yaml", unprotected_orders())
    x = write(tmp_path / "x.yaml", exceptions_doc(entry(tables=["orders-prod", "users-prod"],
                                                        rules=["prod-deletion-protection"])))
    r = run("check", "--policy", DEFAULT_POLICY, app)
    assert r.returncode == 1
    r = run("check", "--policy", DEFAULT_POLICY, "--exceptions", x, "--output", "json", app)
    res = json.loads(r.stdout)["results"][0]
    assert r.returncode == 0 and res["allowed"], r.stdout + r.stderr
    waived = [w for w in res["warnings"] if w.startswith("exception retire-orders (CHG-1234")]
    assert len(waived) == 2
    names = {(x["name"], x["table"]): x.get("exception", {}).get("name") for x in res["rules"]}
    assert names[("prod-deletion-protection", "orders-prod")] == "retire-orders"
    assert names[("prod-point-in-time-recovery", "orders-prod")] is None
    # Expired: the same change is denied again.
    write(x, exceptions_doc(entry(expires="2020-01-01T00:00:00Z")))
    assert run("check", "--policy", DEFAULT_POLICY, "--exceptions", x, app).returncode == 1
    # A broken or missing exceptions file is an input error, with its location.
    x.write_text("apiVersion: tableguard.io/v1\nkind: ProtectionExceptions\n")
    r = run("check", "--policy", DEFAULT_POLICY, "--exceptions", x, app)
    assert r.returncode == 2 and f'{x}:1:1: exceptions: missing required key "metadata"' in r.stderr
    assert run("check", "--policy", DEFAULT_POLICY, "--exceptions", tmp_path / "no.yaml",
              app).returncode == 2


def test_suite_names_an_exceptions_file_and_a_time(tmp_path):
    r = run("test", "tests/policy/exceptions-suite.yaml")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "4 passed, 0 failed", r.stdout
    # The same suite judged after the expiry: the waived cases fail as denied.
    suite = yaml.safe_load((ROOT / "tests/policy/exceptions-suite.yaml").read_text())
    suite["policy"] = str(DEFAULT_POLICY)
    suite["exceptions"] = str(ROOT / "tests/policy/approved-exceptions.yaml")
    suite["now"] = "2026-12-05T00:00:00Z"
    late = write(tmp_path / "late.yaml", suite)
    r = run("test", late)
    assert r.returncode == 1
    assert r.stdout.splitlines()[0].startswith(
        "FAIL the exception waives deletion protection on its table: expected allowed, got denied")
    suite["now"] = "2026-12-05"
    r = run("test", write(tmp_path / "bad.yaml", suite))
    assert r.returncode == 2 and 'now "2026-12-05" is not an RFC 3339 time' in r.stderr


# ---- policy lint --against ---------------------------------------------------------------------

def test_lint_against_real_manifests(tmp_path):
    apps = tmp_path / "apps"
    (apps / "team").mkdir(parents=True)
    (apps / "env.yaml").write_text((ROOT / "tests/policy/manifests/environments.yaml").read_text())
    legacy = application([table("legacy", "legacy-prod")], name="legacy")
    legacy["spec"]["components"][0]["type"] = "aws-dynamodb"
    (apps / "team" / "legacy.json").write_text(json.dumps(legacy))
    (apps / "notes.txt").write_text("not a manifest")
    x = write(tmp_path / "x.yaml", exceptions_doc(entry("unused", tables=["carts-prod"])))
    r = run("policy", "lint", "--against", apps, "--exceptions", x, DEFAULT_POLICY)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert (f'{apps}/team/legacy.json[1]: warning: component "legacy" of type "aws-dynamodb" '
            'holds a tableName but its type is not in components.types') in "\n".join(lines)
    assert any(l.startswith(f'{x}:') and 'exception "unused" matches no table' in l
               for l in lines)
    # Every rule and profile of the shipped policy meets a table of the reference's environments.
    assert not any("rule " in l or "profile " in l for l in lines), lines
    assert run("policy", "lint", "--strict", "--against", apps, DEFAULT_POLICY).returncode == 1

    # A tableNameFrom that misses by case: every table falls back to its component name.
    typo = tmp_path / "typo.yaml"
    typo.write_text(DEFAULT_POLICY.read_text().replace("tableNameFrom: properties.tableName",
                                                       "tableNameFrom: properties.tablename"))
    r = run("policy", "lint", "--against", apps / "env.yaml", typo)
    assert r.returncode == 0
    assert (f'{apps}/env.yaml[1]: warning: component "orders": tableNameFrom '
            '"properties.tablename" has no "tablename" here but "tableName" exists') in r.stderr
    assert f'{typo}: warning: rule "prod-deletion-protection" matches no table' in r.stderr
    # A manifest that does not read fails the lint.
    (apps / "broken.yaml").write_text("kind: [unclosed\n")
    r = run("policy", "lint", "--against", apps, DEFAULT_POLICY)
    assert r.returncode == 1 and f"{apps}/broken.yaml:" in r.stderr

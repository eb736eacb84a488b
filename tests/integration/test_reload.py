# SPDX-License-Identifier: Apache-2.0
"""Hot reload of the policy against the running server, with the layout kubelet gives a
ConfigMap volume: a timestamped directory, a `..data` symlink to it, and `policy.yaml` pointing
through `..data`. An update is an atomic rename of a new `..data` symlink; a broken update must
leave the last good policy serving, visibly; SIGHUP reloads on demand; requests in flight during
swaps all succeed; a broken policy at startup is fatal."""

import json
import os
import pathlib
import re
import signal
import threading
import time

import pytest

from conftest import DEFAULT_POLICY, application, check_envelope, protection, review, run, table

GOOD = DEFAULT_POLICY.read_text()
BROKEN = GOOD.replace("action: deny", "action: block")


def named(name):
    """The shipped policy under another name: the name shows in every denial message."""
    text = GOOD.replace("  name: default", f"  name: {name}")
    assert text != GOOD
    return text


class ConfigMapDir:
    """A directory laid out and updated the way kubelet's atomic writer does it."""

    def __init__(self, root):
        self.root = root
        self.version = 0

    @property
    def policy(self):
        return self.root / "policy.yaml"

    def write(self, text):
        self.version += 1
        ts = f"..2026_01_01_00_00_00.{self.version:09d}"
        (self.root / ts).mkdir()
        (self.root / ts / "policy.yaml").write_text(text)
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        tmp = self.root / "..data_tmp"
        os.symlink(ts, tmp)
        t = time.monotonic()
        os.rename(tmp, data)  # the atomic swap
        if not self.policy.is_symlink():
            os.symlink("..data/policy.yaml", self.policy)
        if old:
            (self.root / old / "policy.yaml").unlink()
            (self.root / old).rmdir()
        return t


def denied_review():
    app = application([table("orders", "orders-prod",
                             traits=[protection(deletionProtection=False)])])
    return review(app)


def policy_name(server, conn=None):
    """Which policy answered: its name is in the denial message."""
    rv = denied_review()
    status, body = server.admit("validate", rv, conn=conn)
    assert status == 200
    check_envelope(body, rv)
    m = re.match(r'tableguard policy "([^"]+)"', body["response"]["status"]["message"])
    assert m, body
    return m.group(1)


def wait_for(predicate, timeout=15, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met within %ss" % timeout)


def metric(server, name):
    _, text = server.plain("/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


@pytest.fixture
def cm(tmp_path):
    d = ConfigMapDir(tmp_path / "policy-volume")
    d.root.mkdir()
    d.write(named("v1"))
    return d


def test_data_swap_is_served_and_latency_measured(start_server, cm):
    server = start_server(policy=cm.policy)
    assert policy_name(server) == "v1"
    conn = server.connect()
    latencies = []
    for i in range(2, 7):
        t0 = cm.write(named(f"v{i}"))
        wait_for(lambda: policy_name(server, conn) == f"v{i}", step=0)
        latencies.append(time.monotonic() - t0)
    conn.close()
    ms = sorted(x * 1000 for x in latencies)
    print(f"\nreload latency (rename of ..data to first answer by the new policy): "
          f"min {ms[0]:.0f} ms, median {ms[len(ms) // 2]:.0f} ms, max {ms[-1]:.0f} ms")
    # inotify plus a 100 ms debounce, not the 10 s polling backstop.
    assert ms[-1] < 2000
    reloaded = [l for l in server.log_lines() if l.get("msg") == "policy reloaded"]
    assert [l["policy"] for l in reloaded][-5:] == ["v2", "v3", "v4", "v5", "v6"]
    assert metric(server, "tableguard_policy_last_reload_successful") == 1


def test_broken_edit_keeps_last_good_policy_until_fixed(start_server, cm):
    server = start_server(policy=cm.policy)
    cm.write(named("v2"))
    wait_for(lambda: policy_name(server) == "v2")
    failures = metric(server, 'tableguard_policy_reload_total{result="failure"}')

    cm.write(BROKEN)
    status, body = wait_for(lambda: (lambda r: r if "reload failed" in r[1] else None)(
        server.plain("/readyz")))
    assert status == 200  # still ready: the last good policy serves
    assert "last good policy serving" in body
    assert 'unknown action "block"' in body and str(cm.policy) in body
    assert policy_name(server) == "v2"
    assert metric(server, "tableguard_policy_last_reload_successful") == 0
    assert metric(server, 'tableguard_policy_reload_total{result="failure"}') == failures + 1
    logged = [l for l in server.log_lines() if l.get("level") == "error" and
              'unknown action "block"' in l.get("diagnostic", "")]
    assert logged, server.log_path.read_text()
    # The HTTPS /readyz says the same.
    status, data = server.request("GET", "/readyz")
    assert status == 200 and b"reload failed" in data

    cm.write(named("v3"))
    wait_for(lambda: policy_name(server) == "v3")
    status, body = server.plain("/readyz")
    assert status == 200 and "reload failed" not in body
    assert metric(server, "tableguard_policy_last_reload_successful") == 1
    assert metric(server, 'tableguard_policy_reload_total{result="failure"}') == failures + 1


def linked_elsewhere(tmp_path):
    """policy.yaml in a mount directory, a symlink to a file in a directory nobody watches:
    an in-place edit of that file is invisible to inotify. Returns (real file, policy path)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = elsewhere / "real.yaml"
    real.write_text(named("v1"))
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "policy.yaml").symlink_to(real)
    return real, mount / "policy.yaml"


def test_sighup_reloads_what_inotify_cannot_see(start_server, tmp_path):
    """policy.yaml links into a directory the watcher does not watch: only SIGHUP (or the
    polling backstop, here an hour) notices an in-place edit there."""
    real, policy = linked_elsewhere(tmp_path)
    server = start_server(policy=policy, reload_interval=3600)
    assert policy_name(server) == "v1"
    real.write_text(named("v2"))
    time.sleep(0.5)
    assert policy_name(server) == "v1"  # proves the watcher did not pick it up
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: policy_name(server) == "v2", timeout=5)
    # A broken file on SIGHUP keeps v2 and says so.
    real.write_text(BROKEN)
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in server.plain("/readyz")[1], timeout=5)
    assert policy_name(server) == "v2"
    assert server.proc.poll() is None


def test_polling_backstop_picks_up_changes(start_server, tmp_path):
    real, policy = linked_elsewhere(tmp_path)
    server = start_server(policy=policy, reload_interval=1)
    real.write_text(named("v2"))
    wait_for(lambda: policy_name(server) == "v2", timeout=5)


def test_requests_in_flight_during_swaps_all_succeed(start_server, cm):
    server = start_server(policy=cm.policy)
    stop = threading.Event()
    results, errors = [], []

    def client():
        conn = server.connect()
        try:
            while not stop.is_set():
                rv = denied_review()
                status, data = server.request("POST", "/validate?timeout=10s", rv, conn=conn)
                body = json.loads(data)
                check_envelope(body, rv)
                assert status == 200 and body["response"]["allowed"] is False
                results.append(re.match(r'tableguard policy "([^"]+)"',
                                        body["response"]["status"]["message"]).group(1))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for i in range(20):
        cm.write(named("even" if i % 2 == 0 else "odd"))
        time.sleep(0.15)
    final = "odd"
    wait_for(lambda: results and results[-1] == final)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(results) > 100
    assert {"even", "odd"} <= set(results)
    print(f"\n{len(results)} requests answered during 20 swaps, all 200")


def test_broken_policy_at_startup_is_fatal(certs, tmp_path):
    bad = tmp_path / "policy.yaml"
    text = BROKEN.replace('tables: ["*-prod"]\n      namespaces', "tabels: [x]\n      namespaces")
    assert text != BROKEN
    bad.write_text(text)
    line = text.splitlines().index("      action: block") + 1
    proc = run("serve", "--policy", bad, "--tls-cert", certs / "tls.crt", "--tls-key",
               certs / "tls.key", "--listen", "127.0.0.1:0", "--metrics-listen", "off")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert f'{bad}:{line}:15: rule "prod-deletion-protection": unknown action "block" ' \
           f'(expected deny, warn or audit)' in lines
    assert any(l.startswith(f"{bad}:") and 'unknown key "tabels"' in l for l in lines)
    assert any("the policy does not load" in l for l in lines)


def failed_reloads(server):
    return sum(1 for l in server.log_lines() if l.get("msg", "").startswith("policy reload failed"))


def test_a_missing_policy_is_reported_once_per_change_and_again_on_sighup(start_server, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(named("v1"))
    server = start_server(policy=path, reload_interval=1)
    path.unlink()
    wait_for(lambda: failed_reloads(server) == 1)
    time.sleep(2.5)  # two more polls see the same missing file
    assert failed_reloads(server) == 1
    assert policy_name(server) == "v1"
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: failed_reloads(server) == 2)
    path.write_text(named("v2"))
    wait_for(lambda: policy_name(server) == "v2")


def test_a_busy_directory_does_not_hold_back_a_reload(start_server, tmp_path):
    """A file beside the policy written without pause must not defer the reload for ever."""
    path = tmp_path / "policy.yaml"
    path.write_text(named("v1"))
    server = start_server(policy=path, reload_interval=60)
    stop = threading.Event()

    def chatter():
        with open(tmp_path / "busy.log", "w") as f:
            while not stop.is_set():
                f.write("x\n")
                f.flush()
                time.sleep(0.02)

    t = threading.Thread(target=chatter)
    t.start()
    try:
        time.sleep(0.3)
        path.write_text(named("v2"))
        wait_for(lambda: policy_name(server) == "v2", timeout=5)
    finally:
        stop.set()
        t.join()

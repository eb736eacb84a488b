# SPDX-License-Identifier: Apache-2.0
"""Diagnostics: one JSON object per line on stderr (time, level, msg, string fields), filtered
by --log-level (or TABLEGUARD_LOG_LEVEL)."""

import datetime
import json
import signal
import socket
import time

import pytest

from conftest import DEFAULT_POLICY, WRAPPER, run

LEVELS = ["debug", "info", "warn", "error"]


def lines(server):
    """Every line the server wrote, parsed; valgrind's own report lines are skipped."""
    out = []
    for raw in server.log_path.read_text().splitlines():
        if WRAPPER and raw.startswith("=="):
            continue
        obj = json.loads(raw)  # every line is one JSON object
        assert isinstance(obj, dict), raw
        out.append(obj)
    return out


def check_shape(obj):
    assert list(obj)[:3] == ["time", "level", "msg"], obj
    t = datetime.datetime.strptime(obj["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    now = datetime.datetime.utcnow()
    assert abs((now - t).total_seconds()) < 600
    assert obj["level"] in LEVELS
    assert all(isinstance(v, str) for v in obj.values()), obj


def provoke(server, policy):
    """Writes a debug line (a client that is not TLS), info lines (a good reload) and error
    lines (a failed reload), then drains."""
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            s.recv(100)
        except OSError:
            pass
    policy.write_text(DEFAULT_POLICY.read_text().replace("name: default", "name: \"second\""))
    server.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    policy.write_text("apiVersion: tableguard.io/v1\nkind: \"Quoted \\\"kind\\\"\"\n")
    server.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert server.stop() == 0


@pytest.mark.parametrize("level", LEVELS)
def test_log_level_filters(start_server, tmp_path, level):
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY.read_text())
    server = start_server(policy=policy, log_level=level)
    provoke(server, policy)
    got = lines(server)
    for obj in got:
        check_shape(obj)
    seen = {obj["level"] for obj in got}
    floor = LEVELS.index(level)
    assert all(LEVELS.index(l) >= floor for l in seen), (level, seen)
    # What each level lets through, from what provoke() caused.
    assert "error" in seen
    msgs = [o["msg"] for o in got]
    assert ("serving" in msgs) == (floor <= 1)
    assert ("policy reloaded" in msgs) == (floor <= 1)
    assert ("debug" in seen) == (floor == 0)
    failed = [o for o in got if o["msg"].startswith("policy reload failed")]
    assert failed and all(":" in o["diagnostic"] for o in failed)


def test_flag_wins_over_environment(start_server):
    # conftest passes --log-level debug.
    server = start_server(env={"TABLEGUARD_LOG_LEVEL": "error"})
    assert server.stop() == 0
    assert any(o["msg"] == "serving" for o in lines(server))


def test_serving_line_names_the_listeners(start_server):
    server = start_server(log_level="info")
    assert server.stop() == 0
    serving = [o for o in lines(server) if o["msg"] == "serving"]
    assert len(serving) == 1
    assert serving[0]["port"] == str(server.port)
    assert serving[0]["metrics_port"] == str(server.metrics_port)
    assert len(serving[0]["sha256"]) == 64


def test_unknown_level_is_a_usage_error(certs):
    r = run("serve", "--policy", DEFAULT_POLICY, "--tls-cert", certs / "tls.crt", "--tls-key",
            certs / "tls.key", "--log-level", "verbose")
    assert r.returncode == 2
    assert "--log-level" in r.stderr


def test_environment_level_without_flag(start_server):
    """Without --log-level, TABLEGUARD_LOG_LEVEL=warn hides the info lines."""
    server = start_server(audit=False, log_level=None, env={"TABLEGUARD_LOG_LEVEL": "warn"})
    assert server.stop() == 0
    log = server.log_path
    text = [l for l in log.read_text().splitlines() if not l.startswith("==")]
    assert all(json.loads(l)["level"] in ("warn", "error") for l in text), text

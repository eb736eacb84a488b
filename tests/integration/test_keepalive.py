# SPDX-License-Identifier: Apache-2.0
"""Keep-alive against the API server's own client (Go's net/http Transport, idle connections kept
90 s, no retry of a POST), driven by tests/integration/webhookclient built with Debian's golang-go:
the server never closes an idle connection the client may still send on, and its default idle
timeout (120 s) outlives the API server's 90 s."""

import json
import subprocess

from conftest import BINARY, application, review, table

def body_file(tmp_path):
    rev = review(application([table("orders", "orders-prod")]))
    path = tmp_path / "review.json"
    path.write_text(json.dumps(rev))
    return path, rev["request"]["uid"]


def idle_run(client, server, tmp_path, idle, wait, conns=40, spread="30ms"):
    """Opens `conns` connections, leaves each idle for `wait` (+- spread), sends on it again."""
    body, uid = body_file(tmp_path)
    r = subprocess.run([str(client), "-mode", "idle",
                        "-url", f"https://127.0.0.1:{server.port}/validate?timeout=10s",
                        "-ca", str(server.ca), "-body", str(body), "-uid", uid,
                        "-idle", idle, "-wait", wait, "-spread", spread, "-conns", str(conns)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_default_idle_timeout_outlives_the_api_servers():
    r = subprocess.run([BINARY, "serve", "--help"], capture_output=True, text=True, timeout=30)
    line = [l for l in r.stdout.splitlines() if "--connection-timeout" in l][0]
    default = int(line.split("default ")[1].rstrip(")"))
    assert default > 90, line  # the API server keeps idle connections 90 s
    assert default == 120


def test_a_go_client_sending_at_its_idle_deadline_loses_nothing(start_server, webhookclient,
                                                               tmp_path):
    # Scaled down 30 times: the API server keeps idle connections 90 s (here 3 s), tableguard
    # 120 s (here 4 s). Requests sent exactly as the client's idle deadline passes go on the
    # pooled connection or a new one; the server must take every one of them.
    server = start_server(connection_timeout=4, audit=False)
    at_client_deadline = idle_run(webhookclient, server, tmp_path, idle="3s", wait="3s")
    assert at_client_deadline["failed"] == 0, at_client_deadline
    assert at_client_deadline["ok"] == 40
    # Some of them were sent on the idle connection itself, just before the client let it go.
    assert at_client_deadline["reused"] > 0, at_client_deadline
    # And at the server's own deadline: the client has dropped its idle connections by then.
    at_server_deadline = idle_run(webhookclient, server, tmp_path, idle="3s", wait="4s")
    assert at_server_deadline["failed"] == 0 and at_server_deadline["ok"] == 40, \
        at_server_deadline

# SPDX-License-Identifier: Apache-2.0
"""The command line as a first user meets it: --help on every command and subcommand (read from
`tableguard --help` itself), `version -o json`, `test --output json`, shell completion that
really completes in bash and zsh, and the man page `make install` installs."""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import BINARY, ROOT, run


def commands():
    """("policy", "lint")-style word lists for every line of `tableguard --help`."""
    r = run("--help")
    assert r.returncode == 0
    out = []
    for line in r.stdout.splitlines():
        m = re.match(r"^\s+tableguard ([a-z]+)(?: ([a-z]+))?(?=\s|$)", line)
        if m:
            out.append([w for w in m.groups() if w])
    return out


def test_every_command_lists_and_answers_help():
    cmds = commands()
    names = {" ".join(c) for c in cmds}
    # The commands of the design's command line, as the binary lists them.
    for want in ("serve", "check", "test", "policy lint", "certs generate", "certs inspect",
                 "audit verify", "selftest", "webhooks delete", "completion", "version"):
        assert want in names, f"{want} missing from tableguard --help: {sorted(names)}"
    for c in cmds:
        r = run(*c, "--help")
        assert r.returncode == 0, f"{' '.join(c)} --help: exit {r.returncode}: {r.stderr}"
        assert r.stdout.startswith(f"usage: tableguard {' '.join(c)}"), f"{' '.join(c)} --help: {r.stdout[:200]}"


@pytest.mark.parametrize("group", ["policy", "audit", "certs", "webhooks"])
def test_a_command_group_answers_help_with_its_subcommands(group):
    r = run(group, "--help")
    assert r.returncode == 0, r.stderr
    subs = [c[1] for c in commands() if c[0] == group and len(c) == 2]
    assert subs
    for sub in subs:
        assert f"tableguard {group} {sub}" in r.stdout
    # Without a subcommand it is a usage error, and an unknown one is named.
    assert run(group).returncode == 2
    r = run(group, "frobnicate")
    assert r.returncode == 2 and f'unknown command "{group} frobnicate"' in r.stderr


def test_version_json_names_the_libraries_loaded():
    r = run("version", "-o", "json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert v["version"] == (ROOT / "VERSION").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{7,40}|unknown|[\w.-]+", v["revision"])
    libs = v["libraries"]
    assert set(libs) == {"libmicrohttpd", "gnutls", "openssl", "cjson", "libyaml"}
    # The run-time versions are the installed ones (pkg-config reads the same packages).
    for lib, pc in (("libmicrohttpd", "libmicrohttpd"), ("gnutls", "gnutls"), ("cjson", "libcjson"),
                    ("libyaml", "yaml-0.1"), ("openssl", "libcrypto")):
        want = subprocess.run(["pkg-config", "--modversion", pc], capture_output=True, text=True).stdout.strip()
        if want:
            assert libs[lib] == want, (lib, libs[lib], want)
    text = run("version")
    assert text.stdout == f"tableguard {v['version']} ({v['revision']})\n"
    assert run("version", "--output", "json").stdout == r.stdout
    assert run("version", "-o", "yaml").returncode == 2


def test_test_output_json_is_a_flag_anywhere():
    suite = str(ROOT / "tests" / "policy" / "default-suite.yaml")
    text = run("test", suite)
    m = re.search(r"^(\d+) passed, (\d+) failed$", text.stdout, re.M)
    assert m, text.stdout
    for args in (["test", suite, "--output", "json"], ["test", "--output", "json", suite],
                 ["test", "-o", "json", suite]):
        r = run(*args)
        assert r.returncode == text.returncode, r.stderr
        doc = json.loads(r.stdout)
        assert (doc["passed"], doc["failed"]) == (int(m.group(1)), int(m.group(2)))
        assert len(doc["cases"]) == doc["passed"] + doc["failed"]
        assert all(c["suite"] == suite and c["passed"] is True for c in doc["cases"])
    r = run("test", suite, "--output", "xml")
    assert r.returncode == 2 and "--output must be text, json or junit" in r.stderr


def test_test_output_json_reports_a_failing_case(tmp_path):
    (tmp_path / "suite.yaml").write_text(
        f"policy: {ROOT / 'policy' / 'default.yaml'}\n"
        "cases:\n"
        "  - name: wrongly expected to pass\n"
        "    manifest:\n"
        "      apiVersion: core.oam.dev/v1beta1\n"
        "      kind: Application\n"
        "      metadata: {name: a, namespace: shop}\n"
        "      spec:\n"
        "        components:\n"
        "          - name: t\n"
        "            type: aws-dynamodb-kro\n"
        "            properties: {tableName: orders-prod, region: us-east-1}\n"
        "            traits:\n"
        "              - type: dynamodb-protection-kro\n"
        "                properties: {deletionProtection: false}\n"
        "    expect: {allowed: true}\n")
    r = run("test", str(tmp_path / "suite.yaml"), "--output", "json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["failed"] == 1 and doc["cases"][0]["passed"] is False
    assert "expected allowed" in doc["cases"][0]["reason"]


def complete_bash(script, words):
    """The candidates bash offers for the command line `words` (the last word being completed)."""
    prog = (f'source {script}\n'
            f'COMP_WORDS=({" ".join(repr(w) for w in words)})\n'
            f'COMP_CWORD={len(words) - 1}\n'
            '_tableguard\n'
            'printf "%s\\n" "${COMPREPLY[@]}"\n')
    env = {**os.environ, "PATH": f"{pathlib.Path(BINARY).parent}:{os.environ['PATH']}"}
    r = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_bash_completion_completes(tmp_path):
    script = tmp_path / "tableguard.bash"
    r = run("completion", "bash")
    assert r.returncode == 0
    script.write_text(r.stdout)
    assert complete_bash(script, ["tableguard", "pol"]) == {"policy"}
    assert complete_bash(script, ["tableguard", "webhooks", ""]) == {"delete", "--help"}
    # Flags come from the command's own --help.
    assert complete_bash(script, ["tableguard", "serve", "--tls-"]) == {"--tls-cert", "--tls-key", "--tls-min-version"}
    assert "--print" in complete_bash(script, ["tableguard", "policy", "lint", "--p"])
    assert complete_bash(script, ["tableguard", "version", "--o"]) == {"--output"}
    if shutil.which("shellcheck"):
        sc = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
        assert sc.returncode == 0, sc.stdout


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (make deps installs it)")
def test_zsh_completion_loads(tmp_path):
    r = run("completion", "zsh")
    assert r.returncode == 0 and r.stdout.startswith("#compdef tableguard\n")
    script = tmp_path / "_tableguard"
    script.write_text(r.stdout)
    assert subprocess.run(["zsh", "-n", str(script)], capture_output=True).returncode == 0
    # Sourced in an interactive-style shell with compinit, it registers itself for tableguard.
    prog = f"autoload -Uz compinit && compinit -u -d {tmp_path}/zcompdump && source {script} && print -r -- $_comps[tableguard]"
    z = subprocess.run(["zsh", "-f", "-c", prog], capture_output=True, text=True, timeout=30)
    assert z.stdout.strip() == "_tableguard", z.stdout + z.stderr
    assert run("completion", "fish").returncode == 2


def test_man_page_names_every_command_and_is_installed(tmp_path):
    page = ROOT / "man" / "tableguard.1"
    text = page.read_text()
    for c in commands():
        assert re.search(r"^\.B tableguard " + r" ".join(c) + r"\b", text, re.M), f"man page lacks {' '.join(c)}"
    if shutil.which("groff"):
        r = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True)
        assert r.returncode == 0 and r.stderr == "", r.stderr
    build = pathlib.Path(BINARY).parent
    r = subprocess.run(["make", "-s", "-C", str(ROOT), f"BUILD={build}", "install", "PREFIX=/usr",
                        f"DESTDIR={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "usr/share/man/man1/tableguard.1").read_text() == text
    assert os.access(tmp_path / "usr/bin/tableguard", os.X_OK)

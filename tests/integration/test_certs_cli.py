# SPDX-License-Identifier: Apache-2.0
"""`tableguard certs generate|inspect` checked from outside: the openssl and GnuTLS command-line
tools verify what it writes, and a real TLS handshake uses it the way the API server would."""

import base64
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading

import pytest

from conftest import run

SERVICE, NAMESPACE = "tableguard", "tg"
SERVICE_NAMES = [
    "tableguard",
    "tableguard.tg",
    "tableguard.tg.svc",
    "tableguard.tg.svc.cluster.local",
]


def tableguard(*args, check=None, cwd=None):
    """Runs one tableguard command through conftest.run; with check, asserts its exit status."""
    proc = run(*args, cwd=cwd)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module", autouse=True)
def certs_wired():
    # A binary without the certs command fails every test here, loudly, rather than skipping.
    proc = run("certs", "generate", "--help")
    assert proc.returncode == 0, "`tableguard certs generate --help` failed:\n" + proc.stderr


def openssl(*args, check=True):
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def generate(out, *extra, check=0):
    return tableguard(
        "certs", "generate", "--service", SERVICE, "--namespace", NAMESPACE,
        "--out", str(out), *extra, check=check,
    )


@pytest.fixture
def ecdsa_dir(tmp_path):
    out = tmp_path / "deploy" / "certs"  # parents are created
    proc = generate(out, "--dns", "localhost", "--ip", "127.0.0.1")
    return out, proc


def test_files_modes_and_ca_bundle(ecdsa_dir):
    out, proc = ecdsa_dir
    assert sorted(os.listdir(out)) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    for name, mode in [("tls.key", 0o600), ("ca.key", 0o600), ("tls.crt", 0o644), ("ca.crt", 0o644)]:
        assert stat.S_IMODE(os.stat(out / name).st_mode) == mode, name
    # stdout is exactly the caBundle: one base64 line of ca.crt's PEM.
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert base64.b64decode(lines[0], validate=True) == (out / "ca.crt").read_bytes()
    assert "tableguard.tg.svc" in proc.stderr


def test_openssl_verifies_every_service_name(ecdsa_dir):
    out, _ = ecdsa_dir
    for host in SERVICE_NAMES + ["localhost"]:
        res = openssl(
            "verify", "-CAfile", str(out / "ca.crt"), "-purpose", "sslserver",
            "-verify_hostname", host, str(out / "tls.crt"),
        )
        assert res.stdout.strip().endswith(": OK")
    openssl(
        "verify", "-CAfile", str(out / "ca.crt"), "-verify_ip", "127.0.0.1", str(out / "tls.crt")
    )
    res = openssl(
        "verify", "-CAfile", str(out / "ca.crt"), "-verify_hostname", "other.tg.svc",
        str(out / "tls.crt"), check=False,
    )
    assert res.returncode != 0
    assert "hostname mismatch" in res.stdout + res.stderr


def test_openssl_text_shows_extensions(ecdsa_dir):
    out, _ = ecdsa_dir
    text = openssl("x509", "-in", str(out / "tls.crt"), "-noout", "-text").stdout
    sans = ", ".join("DNS:" + n for n in SERVICE_NAMES) + ", DNS:localhost, IP Address:127.0.0.1"
    assert sans in text
    assert "CA:FALSE" in text
    assert "TLS Web Server Authentication" in text
    assert "Digital Signature\n" in text  # and nothing else for an ECDSA key
    assert "ASN1 OID: prime256v1" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "X509v3 Authority Key Identifier" in text
    serial = openssl("x509", "-in", str(out / "tls.crt"), "-noout", "-serial").stdout
    assert len(serial.strip().split("=")[1]) == 32  # 128 bits in hex
    ca_text = openssl("x509", "-in", str(out / "ca.crt"), "-noout", "-text").stdout
    assert "CA:TRUE, pathlen:0" in ca_text
    # The key is the certificate's: both give the same public key.
    pub_cert = openssl("x509", "-in", str(out / "tls.crt"), "-noout", "-pubkey").stdout
    pub_key = openssl("pkey", "-in", str(out / "tls.key"), "-pubout").stdout
    assert pub_cert == pub_key


@pytest.mark.skipif(shutil.which("certtool") is None, reason="GnuTLS certtool not installed")
def test_gnutls_verifies_chain(ecdsa_dir):
    # The server terminates TLS with GnuTLS, so GnuTLS must accept what we make.
    out, _ = ecdsa_dir
    res = subprocess.run(
        ["certtool", "--verify", "--load-ca-certificate", str(out / "ca.crt"),
         "--infile", str(out / "tls.crt")],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Verified" in res.stdout


def handshake(out, server_name):
    """A TLS server on loopback with tls.crt/tls.key; a client that trusts only ca.crt."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(out / "tls.crt"), str(out / "tls.key"))
    client_ctx = ssl.create_default_context(cafile=str(out / "ca.crt"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)

    def serve():
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as sock:
            with client_ctx.wrap_socket(sock, server_hostname=server_name) as tls:
                return tls.recv(2)
    finally:
        thread.join(10)
        listener.close()


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_real_tls_handshake(tmp_path, key_type):
    out = tmp_path / "certs"
    generate(out, "--key-type", key_type)
    assert handshake(out, "tableguard.tg.svc") == b"ok"
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(out, "tableguard.other.svc")


def test_rsa_key_usage(tmp_path):
    out = tmp_path / "certs"
    generate(out, "--key-type", "rsa", "--days", "30")
    text = openssl("x509", "-in", str(out / "tls.crt"), "-noout", "-text").stdout
    assert "Public-Key: (2048 bit)" in text
    assert "Digital Signature, Key Encipherment" in text
    enddate = openssl("x509", "-in", str(out / "tls.crt"), "-noout", "-checkend", str(29 * 86400))
    assert enddate.returncode == 0
    res = openssl("x509", "-in", str(out / "tls.crt"), "-noout", "-checkend", str(31 * 86400),
                  check=False)
    assert res.returncode == 1  # expires within 31 days: --days was honoured


def test_refuses_overwrite_then_force_reuses_ca(ecdsa_dir):
    out, _ = ecdsa_dir
    ca_before = (out / "ca.crt").read_bytes()
    tls_before = (out / "tls.crt").read_bytes()
    proc = generate(out, check=1)
    assert "--force" in proc.stderr
    assert proc.stdout == ""
    assert (out / "tls.crt").read_bytes() == tls_before
    generate(out, "--force")
    assert (out / "ca.crt").read_bytes() == ca_before
    assert (out / "tls.crt").read_bytes() != tls_before
    openssl("verify", "-CAfile", str(out / "ca.crt"), str(out / "tls.crt"))


def test_inspect_good_pair(ecdsa_dir):
    out, _ = ecdsa_dir
    proc = tableguard(
        "certs", "inspect", str(out / "tls.crt"), "--key", str(out / "tls.key"),
        "--service", SERVICE, "--namespace", NAMESPACE, check=0,
    )
    assert "subject:    CN=tableguard.tg.svc" in proc.stdout
    assert "key type:   ECDSA P-256" in proc.stdout
    assert "matches" in proc.stdout
    assert proc.stderr == ""


def test_inspect_mismatched_key(ecdsa_dir):
    out, _ = ecdsa_dir
    proc = tableguard(
        "certs", "inspect", str(out / "tls.crt"), "--key", str(out / "ca.key"), check=1
    )
    assert "does not match" in proc.stderr
    assert str(out / "ca.key") in proc.stderr


def test_inspect_missing_service_names_warns(ecdsa_dir):
    out, _ = ecdsa_dir
    proc = tableguard(
        "certs", "inspect", str(out / "tls.crt"), "--service", "webhook",
        "--namespace", NAMESPACE, check=0,
    )
    assert "warning:" in proc.stderr
    assert "webhook.tg.svc" in proc.stderr


def test_inspect_expired_certificate_made_by_openssl(tmp_path):
    # An independent tool makes a certificate that ended in 2020.
    cnf = tmp_path / "ca.cnf"
    cnf.write_text(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
        "default_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n"
    )
    (tmp_path / "index.txt").write_text("")
    (tmp_path / "serial").write_text("01\n")
    key, csr, crt = tmp_path / "old.key", tmp_path / "old.csr", tmp_path / "old.crt"
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
            "-subj", "/CN=old.tg.svc", "-out", str(csr))
    subprocess.run(
        ["openssl", "ca", "-batch", "-config", str(cnf), "-selfsign", "-keyfile", str(key),
         "-in", str(csr), "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
         "-notext", "-out", str(crt)],
        cwd=tmp_path, check=True, capture_output=True, timeout=60,
    )
    proc = tableguard("certs", "inspect", str(crt), "--key", str(key), check=1)
    assert "not after:  2020-02-01T00:00:00Z" in proc.stdout
    assert "key type:   RSA 2048" in proc.stdout
    assert "matches" in proc.stdout
    assert "expired" in proc.stderr and str(crt) in proc.stderr


def test_inspect_unreadable(tmp_path):
    proc = tableguard("certs", "inspect", str(tmp_path / "absent.crt"), check=1)
    assert "absent.crt: cannot read" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["rotate"],
        ["generate", "--namespace", "tg", "--out", "x"],
        ["generate", "--service", "Bad_Name", "--namespace", "tg", "--out", "x"],
        ["generate", "--service", "a", "--namespace", "tg", "--out", "x", "--ip", "1.2.3"],
        ["generate", "--service", "a", "--namespace", "tg", "--out", "x", "--key-type", "dsa"],
        ["inspect"],
    ],
)
def test_usage_errors_exit_2(tmp_path, args):
    proc = tableguard("certs", *args, check=2, cwd=tmp_path)
    assert "usage" in proc.stderr or "invalid" in proc.stderr or "must be" in proc.stderr
    assert not (tmp_path / "x").exists()

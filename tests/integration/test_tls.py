# SPDX-License-Identifier: Apache-2.0
"""TLS on the real listener: the protocol and cipher policy checked with three independent clients
(Python's ssl, OpenSSL's s_client, GnuTLS's gnutls-cli), certificate rotation under a running
server laid out the way the kubelet mounts a Secret, startup checks, and client certificates."""

import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BINARY, DEFAULT_POLICY, application, review, run, table

HAVE_GNUTLS_CLI = shutil.which("gnutls-cli") is not None


# ---- certificate material ---------------------------------------------------------------------

def generate(out, *extra):
    """A fresh CA (unless `out` already holds one) and serving pair for 127.0.0.1/localhost."""
    r = run("certs", "generate", "--service", "tableguard", "--namespace", "tableguard",
            "--dns", "localhost", "--ip", "127.0.0.1", "--out", str(out), *extra)
    assert r.returncode == 0, r.stderr
    return out


def openssl(*args, cwd=None):
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def make_ca(d, cn):
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-days", "30",
            "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return d / "ca.crt", d / "ca.key"


def make_leaf(ca_dir, name, eku, days=30):
    """A certificate signed by the CA in ca_dir, with the given extendedKeyUsage."""
    key, csr, crt = ca_dir / f"{name}.key", ca_dir / f"{name}.csr", ca_dir / f"{name}.crt"
    ext = ca_dir / f"{name}.ext"
    ext.write_text(f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage={eku}\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca.crt"),
            "-CAkey", str(ca_dir / "ca.key"), "-CAcreateserial", "-out", str(crt),
            "-days", str(days), "-extfile", str(ext))
    return crt, key


def expired_pair(d):
    """A self-signed pair whose validity ended yesterday (the openssl CLI of Debian 12 cannot
    backdate, so the cryptography library writes it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (d / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d / "tls.crt", d / "tls.key"


def der_of(pem_path):
    """The DER of the first certificate in a PEM file."""
    text = pem_path.read_text()
    end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(text[:end])


# ---- clients ----------------------------------------------------------------------------------

def peer_der(port, cafile=None):
    """A fresh handshake; returns the DER of the certificate the server presented."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def py_handshake(port, cafile, minimum=None, maximum=None, ciphers=None):
    """(version, cipher) of a handshake with Python's ssl, or raises ssl.SSLError/OSError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(cafile))
    if ciphers:
        ctx.set_ciphers(ciphers)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.version(), s.cipher()[0]


def s_client(port, *args):
    """OpenSSL's s_client; returns (handshake completed, negotiated cipher, output).
    SECLEVEL=0 so that the client really offers what it is asked to (old versions, SHA-1 MACs)."""
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", "localhost", *args],
                       input="", capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    cipher = None
    for line in out.splitlines():
        if line.startswith("New, ") and "Cipher is" in line:
            cipher = line.rsplit("Cipher is ", 1)[1].strip()
    ok = p.returncode == 0 and cipher not in (None, "(NONE)")
    return ok, cipher, out


def gnutls_cli(port, priority, cafile):
    """GnuTLS's client with an explicit priority string; returns (completed, output)."""
    p = subprocess.run(["gnutls-cli", "--x509cafile", str(cafile), "--priority", priority,
                        "-p", str(port), "127.0.0.1"],
                       input="", capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    return p.returncode == 0 and "Handshake was completed" in out, out


# ---- protocol and cipher policy -------------------------------------------------------------------

@pytest.fixture
def server(start_server):
    return start_server(audit=False)


@pytest.fixture(scope="module")
def rsa_certs(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("rsa"), "--key-type", "rsa")


@pytest.fixture
def rsa_server(start_server, rsa_certs):
    s = start_server(audit=False, cert=rsa_certs / "tls.crt", key=rsa_certs / "tls.key")
    s.ca = rsa_certs / "ca.crt"
    return s


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_tls10_and_tls11_refused_openssl(server, flag):
    ok, cipher, out = s_client(server.port, flag, "-cipher", "DEFAULT:@SECLEVEL=0",
                               "-CAfile", str(server.ca))
    assert not ok, out
    # The client did offer the version (so the refusal is the server's).
    assert ("TLSv1" in out) or ("Protocol" in out), out
    # Control: the same client and options with TLS 1.2 succeed.
    ok, cipher, out = s_client(server.port, "-tls1_2", "-cipher", "DEFAULT:@SECLEVEL=0",
                               "-CAfile", str(server.ca))
    assert ok, out


@pytest.mark.skipif(not HAVE_GNUTLS_CLI, reason="gnutls-cli (gnutls-bin) not installed")
@pytest.mark.parametrize("version", ["VERS-TLS1.0", "VERS-TLS1.1"])
def test_tls10_and_tls11_refused_gnutls(server, version):
    ok, out = gnutls_cli(server.port, f"NORMAL:-VERS-ALL:+{version}", server.ca)
    assert not ok, out
    ok, out = gnutls_cli(server.port, "NORMAL:-VERS-ALL:+VERS-TLS1.2", server.ca)
    assert ok, out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # asking for TLS 1.0 is the point
def test_tls10_refused_python(server):
    with pytest.raises((ssl.SSLError, OSError)):
        py_handshake(server.port, server.ca, minimum=ssl.TLSVersion.TLSv1,
                     maximum=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0")


def test_tls12_aead_ecdhe_accepted(server):
    version, cipher = py_handshake(server.port, server.ca, maximum=ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2"
    assert cipher.startswith("ECDHE-ECDSA-") and ("GCM" in cipher or "CHACHA20" in cipher)
    for suite in ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                  "ECDHE-ECDSA-CHACHA20-POLY1305"]:
        ok, got, out = s_client(server.port, "-tls1_2", "-cipher", suite,
                                "-CAfile", str(server.ca))
        assert ok and got == suite, out


@pytest.mark.parametrize("suite", [
    "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA",
    "AES128-SHA", "AES128-SHA256", "ECDHE-ECDSA-AES128-CCM",
])
def test_cbc_and_non_gcm_suites_refused(server, suite):
    ok, got, out = s_client(server.port, "-tls1_2", "-cipher", f"{suite}:@SECLEVEL=0",
                            "-CAfile", str(server.ca))
    assert not ok, out


@pytest.mark.parametrize("suite", [
    "ECDHE-RSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA",     # ECDHE but CBC
    "AES128-GCM-SHA256", "AES256-GCM-SHA384",              # AEAD but RSA key exchange
    "AES128-SHA", "DES-CBC3-SHA",                          # neither
    "DHE-RSA-AES128-GCM-SHA256",                           # finite-field DHE
])
def test_rsa_certificate_refuses_non_ecdhe_and_cbc(rsa_server, suite):
    ok, got, out = s_client(rsa_server.port, "-tls1_2", "-cipher", f"{suite}:@SECLEVEL=0",
                            "-CAfile", str(rsa_server.ca))
    assert not ok, out


def test_rsa_certificate_accepts_ecdhe_rsa_gcm(rsa_server):
    ok, got, out = s_client(rsa_server.port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
                            "-CAfile", str(rsa_server.ca))
    assert ok and got == "ECDHE-RSA-AES128-GCM-SHA256", out


@pytest.mark.skipif(not HAVE_GNUTLS_CLI, reason="gnutls-cli (gnutls-bin) not installed")
@pytest.mark.parametrize("priority", [
    "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC:-MAC-ALL:+SHA1:+SHA256",
    "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA",
    "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+DHE-RSA",
])
def test_gnutls_client_cbc_and_static_rsa_refused(rsa_server, priority):
    ok, out = gnutls_cli(rsa_server.port, priority, rsa_server.ca)
    assert not ok, out


def test_tls13_works(server):
    version, cipher = py_handshake(server.port, server.ca, minimum=ssl.TLSVersion.TLSv1_3)
    assert version == "TLSv1.3"
    assert cipher in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                      "TLS_CHACHA20_POLY1305_SHA256")
    status, _ = server.request("GET", "/healthz")
    assert status == 200


def test_min_version_13_refuses_tls12(start_server):
    s = start_server(audit=False, tls_min_version="1.3")
    with pytest.raises((ssl.SSLError, OSError)):
        py_handshake(s.port, s.ca, maximum=ssl.TLSVersion.TLSv1_2)
    ok, _, out = s_client(s.port, "-tls1_2", "-CAfile", str(s.ca))
    assert not ok, out
    assert py_handshake(s.port, s.ca)[0] == "TLSv1.3"


@pytest.mark.parametrize("value", ["1.1", "1.0", "tls1.3", ""])
def test_invalid_min_version_is_a_startup_error(certs, value):
    r = run("serve", "--policy", str(DEFAULT_POLICY), "--tls-cert", str(certs / "tls.crt"),
            "--tls-key", str(certs / "tls.key"), "--listen", "127.0.0.1:0",
            "--metrics-listen", "off", "--tls-min-version", value)
    assert r.returncode != 0
    assert "tls-min-version" in r.stdout + r.stderr


# ---- startup checks -------------------------------------------------------------------------------

def serve_once(cert, key, *extra):
    return run("serve", "--policy", str(DEFAULT_POLICY), "--tls-cert", str(cert),
               "--tls-key", str(key), "--listen", "127.0.0.1:0", "--metrics-listen", "off",
               *extra)


def startup_error(r):
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [json.loads(l) for l in (r.stdout + r.stderr).splitlines() if l.startswith("{")]
    errors = [l for l in lines if l.get("level") == "error"]
    assert errors, r.stdout + r.stderr
    return " ".join(l.get("error", "") for l in errors)


def test_startup_missing_cert_file(tmp_path, certs):
    missing = tmp_path / "nope" / "tls.crt"
    assert str(missing) in startup_error(serve_once(missing, certs / "tls.key"))


def test_startup_mismatched_key(tmp_path, certs):
    other = generate(tmp_path / "other")
    err = startup_error(serve_once(certs / "tls.crt", other / "tls.key"))
    assert str(other / "tls.key") in err or str(certs / "tls.crt") in err
    assert "match" in err


def test_startup_expired_certificate(tmp_path):
    crt, key = expired_pair(tmp_path / "expired")
    err = startup_error(serve_once(crt, key))
    assert str(crt) in err and "expired" in err


def test_startup_garbage_certificate(tmp_path, certs):
    bad = tmp_path / "garbage.crt"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    assert str(bad) in startup_error(serve_once(bad, certs / "tls.key"))


def test_startup_unreadable_client_ca(tmp_path, certs):
    bad = tmp_path / "ca.pem"
    bad.write_text("no certificate here\n")
    err = startup_error(serve_once(certs / "tls.crt", certs / "tls.key", "--client-ca", str(bad)))
    assert str(bad) in err


# ---- rotation ---------------------------------------------------------------------------------

class SecretDir:
    """A directory laid out as the kubelet mounts a kubernetes.io/tls Secret, updated the way its
    atomic writer does: a new timestamped directory, a "..data_tmp" symlink to it renamed over
    "..data" (one atomic rename), then the old directory removed."""

    def __init__(self, root):
        self.root = root
        self.generation = 0
        root.mkdir(parents=True, exist_ok=True)

    def publish(self, crt_bytes, key_bytes):
        self.generation += 1
        ts = f"..2026_11_25_00_00_{self.generation:02d}.{os.getpid()}"
        new = self.root / ts
        new.mkdir()
        (new / "tls.crt").write_bytes(crt_bytes)
        (new / "tls.key").write_bytes(key_bytes)
        os.chmod(new / "tls.key", 0o600)
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        tmp = self.root / "..data_tmp"
        os.symlink(ts, tmp)
        os.rename(tmp, data)
        for name in ("tls.crt", "tls.key"):
            if not (self.root / name).is_symlink():
                os.symlink(f"..data/{name}", self.root / name)
        if old is not None:
            shutil.rmtree(self.root / old)

    def publish_dir(self, d):
        self.publish((d / "tls.crt").read_bytes(), (d / "tls.key").read_bytes())

    @property
    def crt(self):
        return self.root / "tls.crt"

    @property
    def key(self):
        return self.root / "tls.key"


def wait_for(predicate, timeout):
    """Polls predicate() every 20 ms; returns the seconds it took, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def reload_counts(server):
    """tableguard_tls_reload_total by result, from the metrics listener."""
    status, text = server.plain("/metrics")
    assert status == 200
    out = {}
    for line in text.splitlines():
        if line.startswith("tableguard_tls_reload_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            out[result] = int(float(line.rsplit(" ", 1)[1]))
    return out


def log_events(server, msg_part):
    return [l for l in server.log_lines() if msg_part in l.get("msg", "")]


@pytest.fixture
def generations(tmp_path):
    """Three serving pairs, each under its own new CA."""
    return [generate(tmp_path / f"gen{i}") for i in range(3)]


def keepalive(server, ca):
    ctx = ssl.create_default_context(cafile=str(ca))
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=30)


def validate_on(server, conn):
    """One API-server-shaped request on an existing connection; returns (status, allowed)."""
    status, body = server.admit("validate", review(application([table("t", "orders-prod")])),
                                conn=conn)
    return status, body["response"]["allowed"]


def test_rotation_of_a_secret_volume(tmp_path, start_server, generations):
    g0, g1, _ = generations
    sd = SecretDir(tmp_path / "secret")
    sd.publish_dir(g0)
    s = start_server(audit=False, cert=sd.crt, key=sd.key)
    pid = s.proc.pid
    assert peer_der(s.port, g0 / "ca.crt") == der_of(g0 / "tls.crt")

    old_conn = keepalive(s, g0 / "ca.crt")
    assert validate_on(s, old_conn) == (200, False)
    sock = old_conn.sock
    assert sock is not None, "the server closed the keep-alive connection"
    assert sock.getpeercert(binary_form=True) == der_of(g0 / "tls.crt")

    sd.publish_dir(g1)
    new_der = der_of(g1 / "tls.crt")
    took = wait_for(lambda: peer_der(s.port) == new_der, timeout=10)
    assert took is not None, "the new certificate was not served: " + s.log_path.read_text()
    print(f"rotation picked up by inotify in {took * 1000:.0f} ms")
    assert took < 5
    # The new chain verifies against the new CA only.
    assert peer_der(s.port, g1 / "ca.crt") == new_der
    with pytest.raises(ssl.SSLCertVerificationError):
        peer_der(s.port, g0 / "ca.crt")
    # No restart.
    assert s.proc.poll() is None and s.proc.pid == pid
    assert log_events(s, "certificate reloaded")
    # The connection opened before the swap keeps working, on the same socket and certificate.
    for _ in range(5):
        assert validate_on(s, old_conn) == (200, False)
        assert old_conn.sock is sock, "the keep-alive connection was reopened"
    assert sock.getpeercert(binary_form=True) == der_of(g0 / "tls.crt")
    old_conn.close()


def test_rotation_to_a_bad_pair_is_refused(tmp_path, start_server, generations):
    g0, g1, g2 = generations
    sd = SecretDir(tmp_path / "secret")
    sd.publish_dir(g0)
    s = start_server(audit=False, cert=sd.crt, key=sd.key)
    s.ca = g0 / "ca.crt"
    good = der_of(g0 / "tls.crt")

    # Certificate of one generation, key of another: refused, logged, the old pair serves.
    sd.publish((g1 / "tls.crt").read_bytes(), (g2 / "tls.key").read_bytes())
    assert wait_for(lambda: log_events(s, "certificate reload refused"), timeout=10) is not None
    refusal = log_events(s, "certificate reload refused")[0]
    assert refusal["level"] == "error"
    assert str(sd.crt) in refusal["error"] and "match" in refusal["error"]
    assert peer_der(s.port, g0 / "ca.crt") == good
    assert s.request("GET", "/healthz")[0] == 200

    # Garbage: likewise.
    sd.publish(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n", b"junk\n")
    assert wait_for(lambda: len(log_events(s, "certificate reload refused")) >= 2,
                    timeout=10) is not None
    assert peer_der(s.port, g0 / "ca.crt") == good

    # An empty pair (a half-written Secret).
    sd.publish(b"", b"")
    assert wait_for(lambda: len(log_events(s, "certificate reload refused")) >= 3,
                    timeout=10) is not None
    assert peer_der(s.port, g0 / "ca.crt") == good

    assert reload_counts(s) == {"success": 0, "failure": 3}

    # A good pair after the bad ones is taken.
    sd.publish_dir(g2)
    assert wait_for(lambda: peer_der(s.port) == der_of(g2 / "tls.crt"), timeout=10) is not None
    assert s.proc.poll() is None
    assert reload_counts(s) == {"success": 1, "failure": 3}


def test_readyz_fails_after_a_refused_certificate_and_recovers_with_a_good_one(
        tmp_path, start_server, generations):
    g0, g1, g2 = generations
    sd = SecretDir(tmp_path / "secret")
    sd.publish_dir(g0)
    s = start_server(audit=False, cert=sd.crt, key=sd.key)
    assert s.plain("/readyz") == (200, "ok\n")
    # The old pair keeps serving, but what replaced it does not load: not ready, saying why,
    # on both listeners.
    sd.publish((g1 / "tls.crt").read_bytes(), (g2 / "tls.key").read_bytes())
    assert wait_for(lambda: s.plain("/readyz")[0] == 503, timeout=10) is not None
    status, body = s.plain("/readyz")
    assert body.startswith("not ready: certificate reload failed, the previous certificate "
                           "still serving: ") and str(sd.crt) in body, body
    s.ca = g0 / "ca.crt"
    status, data = s.request("GET", "/readyz")
    assert status == 503 and data.decode() == body
    assert peer_der(s.port, g0 / "ca.crt") == der_of(g0 / "tls.crt")
    # A good pair: ready again.
    sd.publish_dir(g2)
    assert wait_for(lambda: s.plain("/readyz") == (200, "ok\n"), timeout=10) is not None
    assert peer_der(s.port) == der_of(g2 / "tls.crt")

def test_refused_pair_is_reported_once_not_every_poll(tmp_path, start_server, generations):
    g0, g1, g2 = generations
    sd = SecretDir(tmp_path / "secret")
    sd.publish_dir(g0)
    s = start_server(audit=False, cert=sd.crt, key=sd.key, reload_interval=1)
    sd.publish((g1 / "tls.crt").read_bytes(), (g2 / "tls.key").read_bytes())
    assert wait_for(lambda: log_events(s, "certificate reload refused"), timeout=10) is not None
    time.sleep(3.5)  # three polls
    assert len(log_events(s, "certificate reload refused")) == 1
    assert reload_counts(s) == {"success": 0, "failure": 1}
    assert peer_der(s.port) == der_of(g0 / "tls.crt")


def linked_pair(tmp_path, gen):
    """tls.crt/tls.key in `live` are symlinks to files in `store`: rewriting those in place makes
    no inotify event in `live`, the directory the server watches."""
    live, store = tmp_path / "live", tmp_path / "store"
    live.mkdir()
    store.mkdir()
    for name in ("tls.crt", "tls.key"):
        shutil.copy(gen / name, store / name)
        os.symlink(store / name, live / name)
    return live, store


def rewrite_in_place(store, gen):
    """Key first, then certificate, each opened and overwritten (same inode)."""
    for name in ("tls.key", "tls.crt"):
        data = (gen / name).read_bytes()
        with open(store / name, "r+b") as f:
            f.write(data)
            f.truncate(len(data))


def test_sighup_reloads_the_certificate(tmp_path, start_server, generations):
    g0, g1, _ = generations
    live, store = linked_pair(tmp_path, g0)
    s = start_server(audit=False, cert=live / "tls.crt", key=live / "tls.key",
                     reload_interval=3600)
    pid = s.proc.pid
    rewrite_in_place(store, g1)
    time.sleep(1.5)
    assert peer_der(s.port) == der_of(g0 / "tls.crt"), "no inotify event was expected"
    s.proc.send_signal(signal.SIGHUP)
    took = wait_for(lambda: peer_der(s.port) == der_of(g1 / "tls.crt"), timeout=10)
    assert took is not None, s.log_path.read_text()
    assert s.proc.pid == pid and s.proc.poll() is None


def test_polling_backstop_picks_up_in_place_rewrite(tmp_path, start_server, generations):
    g0, g1, _ = generations
    live, store = linked_pair(tmp_path, g0)
    s = start_server(audit=False, cert=live / "tls.crt", key=live / "tls.key", reload_interval=1)
    # The poll may see the new key with the old certificate for a moment; that is refused and
    # the next poll takes the pair.
    rewrite_in_place(store, g1)
    took = wait_for(lambda: peer_der(s.port) == der_of(g1 / "tls.crt"), timeout=10)
    assert took is not None, s.log_path.read_text()
    print(f"polling backstop (1 s) picked the rewrite up in {took * 1000:.0f} ms")
    assert took < 4


def test_in_place_rewrite_is_not_seen_without_polling(tmp_path, start_server, generations):
    """The control for the backstop test: with a long interval the same rewrite stays unseen,
    so the pickup above is the poll's doing."""
    g0, g1, _ = generations
    live, store = linked_pair(tmp_path, g0)
    s = start_server(audit=False, cert=live / "tls.crt", key=live / "tls.key",
                     reload_interval=3600)
    rewrite_in_place(store, g1)
    time.sleep(2.5)
    assert peer_der(s.port) == der_of(g0 / "tls.crt")


# ---- client certificates ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def client_pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("clientpki")
    make_ca(root / "ca", "tableguard test client CA")
    make_ca(root / "other", "some other CA")
    return {
        "ca": root / "ca" / "ca.crt",
        "client": make_leaf(root / "ca", "kube-apiserver", "clientAuth"),
        "server_only": make_leaf(root / "ca", "not-a-client", "serverAuth"),
        "foreign": make_leaf(root / "other", "kube-apiserver", "clientAuth"),
    }


@pytest.fixture
def mtls_server(start_server, client_pki):
    return start_server(audit=False, client_ca=client_pki["ca"])


def validate_with(server, cert=None, key=None, maximum=None):
    ctx = server.context(cert=cert, key=key)
    if maximum:
        ctx.maximum_version = maximum
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=30)
    try:
        return server.admit("validate", review(application([table("t", "orders-dev")])),
                            conn=conn)
    finally:
        conn.close()


def test_client_ca_request_without_certificate_is_refused(mtls_server):
    # The handshake completes (the server asks for a certificate but does not require one, so
    # that kubelet probes can reach /healthz); the request itself is answered 403.
    status, body = validate_with(mtls_server)
    assert status == 403
    assert "client certificate" in body["error"]
    status, _ = mtls_server.request("POST", "/mutate?timeout=10s", body="{}")
    assert status == 403


@pytest.mark.parametrize("which", ["foreign", "server_only"])
def test_client_ca_refuses_wrong_certificates(mtls_server, client_pki, which):
    crt, key = client_pki[which]
    status, body = validate_with(mtls_server, crt, key)
    assert status == 403, body


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_2, None])
def test_client_ca_accepts_a_valid_client_certificate(mtls_server, client_pki, maximum):
    crt, key = client_pki["client"]
    status, body = validate_with(mtls_server, crt, key, maximum=maximum)
    assert status == 200
    assert body["response"]["allowed"] is True


def test_client_ca_verdicts_do_not_leak_between_connections(mtls_server, client_pki):
    """Verified chains are remembered (verifying costs more than the rest of a request); a
    remembered one must not let another certificate, or none, through."""
    crt, key = client_pki["client"]
    ctx = mtls_server.context(cert=crt, key=key)
    conn = http.client.HTTPSConnection("127.0.0.1", mtls_server.port, context=ctx, timeout=30)
    for _ in range(3):
        status, _ = mtls_server.admit("validate", review(application([table("t", "a-dev")])),
                                      conn=conn)
        assert status == 200
    for which in ("foreign", "server_only", None):
        args = client_pki[which] if which else (None, None)
        assert validate_with(mtls_server, *args)[0] == 403, which
        # The remembered connection still works.
        status, _ = mtls_server.admit("validate", review(application([table("t", "a-dev")])),
                                      conn=conn)
        assert status == 200
    conn.close()


def test_client_ca_handshake_asks_for_a_certificate(mtls_server, client_pki):
    ok, _, out = s_client(mtls_server.port, "-tls1_2", "-CAfile", str(mtls_server.ca))
    assert ok, out
    assert "Acceptable client certificate CA names" in out
    assert "tableguard test client CA" in out


def test_client_ca_probes_need_no_client_certificate(mtls_server):
    """kubelet's HTTPS probes present no client certificate: /healthz and /readyz answer."""
    assert mtls_server.request("GET", "/healthz")[0] == 200
    assert mtls_server.request("GET", "/readyz")[0] == 200
    # Anything else still needs one.
    assert mtls_server.request("GET", "/nothing-here")[0] == 403


def test_without_client_ca_no_certificate_is_asked(server):
    ok, _, out = s_client(server.port, "-tls1_2", "-CAfile", str(server.ca))
    assert ok and "Acceptable client certificate CA names" not in out, out

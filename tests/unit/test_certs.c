// SPDX-License-Identifier: Apache-2.0
// Unit tests of certificate generation, the load check and the `certs` command line.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/tmpdir.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certs/certgen.h"
#include "certs/certs.h"
#include "server/certtool.h"

#define DAY 86400L

struct fixture {
    char dir[64];
    char path[8][256]; // fpath's scratch, used in turn so that eight paths may be alive
    int next_path;
    char out[16384];
    char err[16384];
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tg-certs-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static char *
fpath(struct fixture *f, const char *name)
{
    char *p = f->path[f->next_path++ % 8], buf[sizeof(f->path[0])];

    snprintf(buf, sizeof(buf), "%s/%s", f->dir, name);
    memcpy(p, buf, sizeof(buf));
    return p;
}

// Reads a whole stream opened on a temporary file into buf.
static void
slurp_stream(FILE *fp, char *buf, size_t len)
{
    size_t n;

    rewind(fp);
    n = fread(buf, 1, len - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

// Runs certtool_main on a NULL-terminated argv, capturing stdout and stderr into f->out/f->err.
static int
run_cli(struct fixture *f, char **argv)
{
    FILE *out = tmpfile(), *err = tmpfile();
    int argc = 0, saved_out, saved_err, rc;

    assert_non_null(out);
    assert_non_null(err);
    while (argv[argc] != NULL)
        argc++;
    fflush(stdout);
    fflush(stderr);
    saved_out = dup(STDOUT_FILENO);
    saved_err = dup(STDERR_FILENO);
    dup2(fileno(out), STDOUT_FILENO);
    dup2(fileno(err), STDERR_FILENO);
    rc = certtool_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    slurp_stream(out, f->out, sizeof(f->out));
    slurp_stream(err, f->err, sizeof(f->err));
    return rc;
}

#define CLI(f, ...) run_cli((f), (char *[]){__VA_ARGS__, NULL})

static int
generate(struct fixture *f, const char *extra1, const char *extra2)
{
    return CLI(f, "generate", "--service", "tableguard", "--namespace", "tg", "--out", f->dir,
               "--dns", "localhost", "--ip", "127.0.0.1", (char *)extra1, (char *)extra2);
}

static char *
read_file(const char *path, long *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf;

    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = ftell(fp);
    rewind(fp);
    buf = calloc(1, (size_t)*len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)*len, fp), (size_t)*len);
    fclose(fp);
    return buf;
}

// Reads the first certificate (want_key 0) or private key (want_key 1) of a PEM file.
static void *
read_pem(const char *path, int want_key)
{
    BIO *bio = BIO_new_file(path, "r");
    void *obj;

    assert_non_null(bio);
    if (want_key)
        obj = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    else
        obj = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(obj);
    return obj;
}

#define read_cert(path) ((X509 *)read_pem((path), 0))
#define read_key(path) ((EVP_PKEY *)read_pem((path), 1))

// OpenSSL's own text rendering of a certificate, for checking extensions independently.
static char *
cert_text(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *copy;
    long len;

    assert_int_equal(X509_print(bio, x), 1);
    len = BIO_get_mem_data(bio, &data);
    copy = strndup(data, (size_t)len);
    BIO_free(bio);
    return copy;
}

static int
mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 07777);
}

// Verifies leaf against ca alone as a TLS server certificate for host (or IP when ip != 0).
static int
verify(X509 *leaf, X509 *ca, const char *host, int ip)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_VERIFY_PARAM *param;
    int ok;

    X509_STORE_add_cert(store, ca);
    X509_STORE_CTX_init(ctx, store, leaf, NULL);
    param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
    if (ip)
        X509_VERIFY_PARAM_set1_ip_asc(param, host);
    else
        X509_VERIFY_PARAM_set1_host(param, host, 0);
    ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void
test_generate_ecdsa_layout(void **state)
{
    struct fixture *f = *state;
    X509 *leaf, *ca;
    EVP_PKEY *key;
    BIGNUM *serial;
    char *text, *ca_pem, decoded[8192], group[32];
    long ca_len;
    int day, sec;
    size_t glen;

    assert_int_equal(generate(f, NULL, NULL), 0);
    leaf = read_cert(fpath(f, "tls.crt"));
    ca = read_cert(fpath(f, "ca.crt"));
    key = read_key(fpath(f, "tls.key"));

    text = cert_text(leaf);
    assert_non_null(strstr(text, "DNS:tableguard, DNS:tableguard.tg, DNS:tableguard.tg.svc, "
                                 "DNS:tableguard.tg.svc.cluster.local, DNS:localhost, "
                                 "IP Address:127.0.0.1\n"));
    assert_non_null(strstr(text, "Subject: CN=tableguard.tg.svc"));
    free(text);
    assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
    assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_true(X509_check_ca(ca) >= 1);
    assert_non_null(X509_get0_subject_key_id(leaf));
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf), X509_get0_subject_key_id(ca)), 0);

    serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    assert_false(BN_is_negative(serial));
    assert_in_range(BN_num_bits(serial), 120, 128);
    BN_free(serial);

    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_group_name(key, group, sizeof(group), &glen), 1);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), key), 1);

    // 365 days from now, starting 5 minutes early for clock skew.
    assert_int_equal(
        ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
    assert_int_equal(day, 365);
    assert_int_equal(sec, 300);
    assert_int_equal(X509_cmp_current_time(X509_get0_notBefore(leaf)), -1);

    assert_int_equal(verify(leaf, ca, "tableguard.tg.svc", 0), 1);
    assert_int_equal(verify(leaf, ca, "localhost", 0), 1);
    assert_int_equal(verify(leaf, ca, "127.0.0.1", 1), 1);
    assert_int_equal(verify(leaf, ca, "other.tg.svc", 0), 0);

    assert_int_equal(mode_of(fpath(f, "tls.key")), 0600);
    assert_int_equal(mode_of(fpath(f, "ca.key")), 0600);
    assert_int_equal(mode_of(fpath(f, "tls.crt")), 0644);
    assert_int_equal(mode_of(fpath(f, "ca.crt")), 0644);
    assert_int_equal(count_entries(f->dir), 4); // no temporary files left behind

    // stdout is the caBundle: base64 of ca.crt's PEM, on one line.
    ca_pem = read_file(fpath(f, "ca.crt"), &ca_len);
    assert_int_equal(strlen(f->out), (size_t)(ca_len + 2) / 3 * 4 + 1);
    assert_int_equal(f->out[strlen(f->out) - 1], '\n');
    assert_true(EVP_DecodeBlock((unsigned char *)decoded, (unsigned char *)f->out,
                                (int)strlen(f->out) - 1) >= ca_len);
    assert_memory_equal(decoded, ca_pem, (size_t)ca_len);
    free(ca_pem);

    EVP_PKEY_free(key);
    X509_free(ca);
    X509_free(leaf);
}

static void
test_generate_rsa(void **state)
{
    struct fixture *f = *state;
    X509 *leaf, *ca;
    EVP_PKEY *key;

    assert_int_equal(generate(f, "--key-type", "rsa"), 0);
    leaf = read_cert(fpath(f, "tls.crt"));
    ca = read_cert(fpath(f, "ca.crt"));
    key = read_key(fpath(f, "tls.key"));
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
    assert_int_equal(EVP_PKEY_get_bits(key), 2048);
    assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(ca)), EVP_PKEY_RSA);
    assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    assert_int_equal(verify(leaf, ca, "tableguard.tg.svc.cluster.local", 0), 1);
    EVP_PKEY_free(key);
    X509_free(ca);
    X509_free(leaf);
}

static void
test_refuses_overwrite_without_force(void **state)
{
    struct fixture *f = *state;
    char *before, *after;
    long n1, n2;

    assert_int_equal(generate(f, NULL, NULL), 0);
    before = read_file(fpath(f, "tls.crt"), &n1);
    assert_int_equal(generate(f, NULL, NULL), 1);
    assert_non_null(strstr(f->err, "--force"));
    assert_string_equal(f->out, "");
    after = read_file(fpath(f, "tls.crt"), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, (size_t)n1);
    free(before);
    free(after);
}

static void
test_force_reuses_valid_ca(void **state)
{
    struct fixture *f = *state;
    char *ca1, *ca2, *tls1, *tls2;
    long n1, n2, t1, t2;
    X509 *leaf, *ca;

    assert_int_equal(generate(f, NULL, NULL), 0);
    ca1 = read_file(fpath(f, "ca.crt"), &n1);
    tls1 = read_file(fpath(f, "tls.crt"), &t1);
    assert_int_equal(generate(f, "--force", NULL), 0);
    assert_non_null(strstr(f->err, "reused CA"));
    ca2 = read_file(fpath(f, "ca.crt"), &n2);
    tls2 = read_file(fpath(f, "tls.crt"), &t2);
    assert_int_equal(n1, n2);
    assert_memory_equal(ca1, ca2, (size_t)n1);
    assert_true(t1 != t2 || memcmp(tls1, tls2, (size_t)t1) != 0); // a new serving certificate
    leaf = read_cert(fpath(f, "tls.crt"));
    ca = read_cert(fpath(f, "ca.crt"));
    assert_int_equal(verify(leaf, ca, "tableguard.tg.svc", 0), 1);
    X509_free(leaf);
    X509_free(ca);
    free(ca1);
    free(ca2);
    free(tls1);
    free(tls2);
}

static void
test_incomplete_ca_needs_force(void **state)
{
    struct fixture *f = *state;
    char *ca1, *ca2;
    long n1, n2;
    X509 *leaf, *ca;

    assert_int_equal(generate(f, NULL, NULL), 0);
    ca1 = read_file(fpath(f, "ca.crt"), &n1);
    assert_int_equal(unlink(fpath(f, "ca.key")), 0);
    assert_int_equal(unlink(fpath(f, "tls.crt")), 0);
    assert_int_equal(generate(f, NULL, NULL), 1);
    assert_non_null(strstr(f->err, "ca.key: missing"));
    assert_int_equal(access(fpath(f, "tls.crt"), F_OK), -1);

    assert_int_equal(generate(f, "--force", NULL), 0);
    assert_non_null(strstr(f->err, "replacing the CA"));
    ca2 = read_file(fpath(f, "ca.crt"), &n2);
    assert_true(n1 != n2 || memcmp(ca1, ca2, (size_t)n1) != 0);
    leaf = read_cert(fpath(f, "tls.crt"));
    ca = read_cert(fpath(f, "ca.crt"));
    assert_int_equal(verify(leaf, ca, "tableguard.tg.svc", 0), 1);
    X509_free(leaf);
    X509_free(ca);
    free(ca1);
    free(ca2);
}

static void
test_usage_errors(void **state)
{
    struct fixture *f = *state;
    char *d = f->dir;

    assert_int_equal(run_cli(f, (char *[]){NULL}), 2);
    assert_int_equal(CLI(f, "rotate"), 2);
    assert_non_null(strstr(f->err, "unknown command \"rotate\""));
    assert_int_equal(CLI(f, "generate", "--namespace", "tg", "--out", d), 2);
    assert_int_equal(CLI(f, "generate", "--service", "Bad_Name", "--namespace", "tg", "--out", d),
                     2);
    assert_int_equal(
        CLI(f, "generate", "--service", "a", "--namespace", "tg", "--out", d, "--ip", "1.2.3"), 2);
    assert_non_null(strstr(f->err, "invalid --ip \"1.2.3\""));
    assert_int_equal(
        CLI(f, "generate", "--service", "a", "--namespace", "tg", "--out", d, "--dns", "a,b"), 2);
    assert_int_equal(
        CLI(f, "generate", "--service", "a", "--namespace", "tg", "--out", d, "--days", "0"), 2);
    assert_int_equal(
        CLI(f, "generate", "--service", "a", "--namespace", "tg", "--out", d, "--days", "9x"), 2);
    assert_int_equal(
        CLI(f, "generate", "--service", "a", "--namespace", "tg", "--out", d, "--key-type", "dsa"),
        2);
    assert_int_equal(
        CLI(f, "generate", "--service", "a", "--namespace", "tg", "--out", d, "--bogus"), 2);
    assert_int_equal(CLI(f, "inspect"), 2);
    assert_int_equal(CLI(f, "inspect", "a", "b"), 2);
    assert_int_equal(CLI(f, "inspect", "a", "--service", "x"), 2);
    assert_int_equal(count_entries(d), 0); // nothing written by a usage error

    assert_int_equal(CLI(f, "--help"), 0);
    assert_non_null(strstr(f->out, "certs generate"));
    assert_int_equal(CLI(f, "generate", "--help"), 0);
    assert_non_null(strstr(f->out, "--key-type"));
    assert_int_equal(CLI(f, "inspect", "--help"), 0);
    assert_non_null(strstr(f->out, "--key KEYFILE"));
}

static void
test_check_pair_good(void **state)
{
    struct fixture *f = *state;
    char *key;
    struct certs_report rep;
    time_t now = time(NULL);

    assert_int_equal(generate(f, NULL, NULL), 0);
    key = fpath(f, "tls.key");
    assert_int_equal(certs_check_pair(fpath(f, "tls.crt"), key, "tableguard", "tg", now, &rep), 0);
    assert_int_equal(rep.nerrors, 0);
    assert_int_equal(rep.nwarnings, 0);
    assert_int_equal(rep.key_match, 1);
    assert_in_range(rep.not_after - now, 365 * DAY - 5, 365 * DAY + 5);
    assert_in_range(now - rep.not_before, 295, 305);
    assert_string_equal(rep.subject, "CN=tableguard.tg.svc");
    assert_string_equal(rep.issuer, "CN=tableguard CA for tableguard.tg");
    assert_string_equal(rep.key_type, "ECDSA P-256");
    assert_string_equal(rep.sans, "DNS:tableguard, DNS:tableguard.tg, DNS:tableguard.tg.svc, "
                                  "DNS:tableguard.tg.svc.cluster.local, DNS:localhost, "
                                  "IP:127.0.0.1");

    // Without a key only the certificate is judged.
    assert_int_equal(certs_check_pair(fpath(f, "tls.crt"), NULL, NULL, NULL, now, &rep), 0);
    assert_int_equal(rep.key_match, -1);
}

static void
test_check_pair_key_mismatch(void **state)
{
    struct fixture *f = *state;
    char *key;
    struct certs_report rep;

    assert_int_equal(generate(f, NULL, NULL), 0);
    key = fpath(f, "ca.key");
    assert_int_equal(certs_check_pair(fpath(f, "tls.crt"), key, NULL, NULL, time(NULL), &rep), -1);
    assert_int_equal(rep.nerrors, 1);
    assert_int_equal(rep.key_match, 0);
    assert_non_null(strstr(rep.errors[0], key));
    assert_non_null(strstr(rep.errors[0], "does not match"));
    assert_true(rep.not_after > time(NULL)); // still described, for the metric

    assert_int_equal(CLI(f, "inspect", fpath(f, "tls.crt"), "--key", key), 1);
    assert_non_null(strstr(f->out, "does NOT match"));
    assert_non_null(strstr(f->err, "does not match"));
}

// Writes a CA-signed serving certificate made as if the clock read now, valid for days.
static void
write_pair_at(struct fixture *f, time_t now, long days)
{
    struct certgen_leaf leaf = {.service = "tableguard", .ns = "tg", .days = days, .now = now};
    char err[256];
    EVP_PKEY *ca_key = certgen_key_new(CERTGEN_KEY_ECDSA, err, sizeof(err));
    EVP_PKEY *key = certgen_key_new(CERTGEN_KEY_ECDSA, err, sizeof(err));
    X509 *ca, *x;

    assert_non_null(ca_key);
    assert_non_null(key);
    ca = certgen_ca_new(ca_key, "test CA", 3650, now, err, sizeof(err));
    assert_non_null(ca);
    x = certgen_leaf_new(&leaf, key, ca, ca_key, err, sizeof(err));
    assert_non_null(x);
    assert_int_equal(certgen_write_pem(fpath(f, "tls.key"), NULL, key, 0600, err, sizeof(err)), 0);
    assert_int_equal(certgen_write_pem(fpath(f, "tls.crt"), x, NULL, 0644, err, sizeof(err)), 0);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
}

static int
check_written_at(struct fixture *f, time_t now, struct certs_report *rep)
{
    return certs_check_pair(fpath(f, "tls.crt"), fpath(f, "tls.key"), "tableguard", "tg", now, rep);
}

static int
check_written(struct fixture *f, struct certs_report *rep)
{
    return check_written_at(f, time(NULL), rep);
}

static void
test_check_pair_expired(void **state)
{
    struct fixture *f = *state;
    struct certs_report rep;

    write_pair_at(f, time(NULL) - 400 * DAY, 30);
    assert_int_equal(check_written(f, &rep), -1);
    assert_int_equal(rep.nerrors, 1);
    assert_non_null(strstr(rep.errors[0], fpath(f, "tls.crt")));
    assert_non_null(strstr(rep.errors[0], "expired 370 days ago"));
    assert_int_equal(rep.key_match, 1);
    assert_true(rep.not_after < time(NULL));

    assert_int_equal(CLI(f, "inspect", fpath(f, "tls.crt")), 1);
    assert_non_null(strstr(f->out, "days left:  -370\n"));
    assert_non_null(strstr(f->err, "expired"));
}

static void
test_check_pair_not_yet_valid(void **state)
{
    struct fixture *f = *state;
    struct certs_report rep;

    write_pair_at(f, time(NULL) + 2 * DAY, 30);
    assert_int_equal(check_written(f, &rep), -1);
    assert_int_equal(rep.nerrors, 1);
    assert_non_null(strstr(rep.errors[0], "not valid until"));
}

static void
test_check_pair_near_expiry_warns(void **state)
{
    struct fixture *f = *state;
    struct certs_report rep;
    time_t now = time(NULL);

    // Checked at the instant it was written for, so 9 days 23 hours are left exactly, however
    // long generating the pair took (a second later it would be 238 hours).
    write_pair_at(f, now - 3600, 10);
    assert_int_equal(check_written_at(f, now, &rep), 0);
    assert_int_equal(rep.nerrors, 0);
    assert_int_equal(rep.nwarnings, 1);
    assert_non_null(strstr(rep.warnings[0], fpath(f, "tls.crt")));
    assert_non_null(strstr(rep.warnings[0], "expires in 9 days (239 hours)"));

    write_pair_at(f, time(NULL), CERTS_WARN_DAYS + 1);
    assert_int_equal(check_written(f, &rep), 0);
    assert_int_equal(rep.nwarnings, 0);
}

static void
test_check_pair_missing_service_names_warns(void **state)
{
    struct fixture *f = *state;
    char *key;
    struct certs_report rep;

    assert_int_equal(generate(f, NULL, NULL), 0);
    key = fpath(f, "tls.key");
    assert_int_equal(
        certs_check_pair(fpath(f, "tls.crt"), key, "tableguard", "prod", time(NULL), &rep), 0);
    assert_int_equal(rep.nerrors, 0);
    assert_int_equal(rep.nwarnings, 2);
    assert_non_null(strstr(rep.warnings[0], "does not cover tableguard.prod.svc"));
    assert_non_null(strstr(rep.warnings[1], "tableguard.prod, tableguard.prod.svc.cluster.local"));
    // The bare service name is shared with namespace tg, so it is covered.
    assert_null(strstr(rep.warnings[1], "names tableguard,"));
}

static void
test_check_pair_unreadable(void **state)
{
    struct fixture *f = *state;
    char *key, *junk;
    struct certs_report rep;
    FILE *fp;

    key = fpath(f, "missing.key");
    assert_int_equal(certs_check_pair(fpath(f, "missing.crt"), key, NULL, NULL, 0, &rep), -1);
    assert_int_equal(rep.nerrors, 2);
    assert_non_null(strstr(rep.errors[0], "missing.crt: cannot read: No such file"));
    assert_non_null(strstr(rep.errors[1], "missing.key: cannot read"));
    assert_int_equal(rep.not_after, 0);
    assert_int_equal(rep.key_match, -1);

    junk = fpath(f, "junk.pem");
    fp = fopen(junk, "w");
    assert_non_null(fp);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", fp);
    fclose(fp);
    assert_int_equal(certs_check_pair(junk, junk, NULL, NULL, 0, &rep), -1);
    assert_int_equal(rep.nerrors, 2);
    assert_non_null(strstr(rep.errors[0], "junk.pem: not a PEM certificate"));
    assert_non_null(strstr(rep.errors[1], "junk.pem: not a PEM private key"));
}

static void
test_check_pair_encrypted_key_refused(void **state)
{
    struct fixture *f = *state;
    char *key_path;
    struct certs_report rep;
    EVP_PKEY *key;
    FILE *fp;

    assert_int_equal(generate(f, NULL, NULL), 0);
    key = read_key(fpath(f, "tls.key"));
    key_path = fpath(f, "enc.key");
    fp = fopen(key_path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PKCS8PrivateKey(fp, key, EVP_aes_256_cbc(), "secret", 6, NULL, NULL),
                     1);
    fclose(fp);
    assert_int_equal(certs_check_pair(fpath(f, "tls.crt"), key_path, NULL, NULL, time(NULL), &rep),
                     -1);
    assert_int_equal(rep.nerrors, 1);
    assert_non_null(strstr(rep.errors[0], "enc.key: private key is encrypted"));
    EVP_PKEY_free(key);
}

static void
test_leaf_capped_at_ca_expiry(void **state)
{
    struct certgen_leaf leaf = {.service = "s", .ns = "n", .days = 365, .now = time(NULL)};
    char err[256];
    EVP_PKEY *key = certgen_key_new(CERTGEN_KEY_ECDSA, err, sizeof(err));
    X509 *ca = certgen_ca_new(key, "short CA", 10, leaf.now, err, sizeof(err));
    X509 *x = certgen_leaf_new(&leaf, key, ca, key, err, sizeof(err));

    (void)state;
    assert_non_null(x);
    assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)), 0);

    // A bad IP is named; nothing is returned.
    leaf.ips = (const char *const[]){"300.1.1.1"};
    leaf.nips = 1;
    assert_null(certgen_leaf_new(&leaf, key, ca, key, err, sizeof(err)));
    assert_string_equal(err, "not an IP address: \"300.1.1.1\"");
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
}

static void
test_inspect_prints_report(void **state)
{
    struct fixture *f = *state;
    char *key;

    assert_int_equal(generate(f, "--key-type", "rsa"), 0);
    key = fpath(f, "tls.key");
    assert_int_equal(CLI(f, "inspect", fpath(f, "tls.crt"), "--key", key, "--service", "tableguard",
                         "--namespace", "tg"),
                     0);
    assert_non_null(strstr(f->out, "subject:    CN=tableguard.tg.svc\n"));
    assert_non_null(strstr(f->out, "sans:       DNS:tableguard, "));
    // The clock may have ticked past the second the certificate was made in.
    assert_true(strstr(f->out, "days left:  365\n") || strstr(f->out, "days left:  364\n"));
    assert_non_null(strstr(f->out, "key type:   RSA 2048\n"));
    assert_non_null(strstr(f->out, "matches\n"));
    assert_string_equal(f->err, "");

    // Missing service names warn but do not fail.
    assert_int_equal(CLI(f, "inspect", fpath(f, "tls.crt"), "--service", "x", "--namespace", "y"),
                     0);
    assert_non_null(strstr(f->err, "warning: "));
    assert_non_null(strstr(f->err, "does not cover x.y.svc"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_ecdsa_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generate_rsa, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_overwrite_without_force, setup, teardown),
        cmocka_unit_test_setup_teardown(test_force_reuses_valid_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_ca_needs_force, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_pair_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_pair_key_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_pair_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_pair_not_yet_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_pair_near_expiry_warns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_pair_missing_service_names_warns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_pair_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_pair_encrypted_key_refused, setup, teardown),
        cmocka_unit_test(test_leaf_capped_at_ca_expiry),
        cmocka_unit_test_setup_teardown(test_inspect_prints_report, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

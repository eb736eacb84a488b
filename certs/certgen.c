// SPDX-License-Identifier: Apache-2.0
// Creation of keys, a CA and serving certificates on OpenSSL 3, and their atomic writing as PEM.
#include "certs/certgen.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "util/file.h"
#include "util/xalloc.h"

// Certificates start this long before "now" so a node whose clock runs a little behind does
// not reject a certificate made a moment ago.
#define CERTGEN_BACKDATE_SECONDS 300

// Fills err with msg and the reason of the newest OpenSSL error, then clears OpenSSL's queue.
static void
ossl_error(char *err, size_t errlen, const char *msg)
{
    unsigned long e = ERR_peek_last_error();
    char reason[256] = "unknown error";

    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    snprintf(err, errlen, "%s: %s", msg, reason);
    ERR_clear_error();
}

void
certgen_service_names(const char *service, const char *ns,
                      char names[CERTGEN_SERVICE_NAMES][CERTGEN_NAME_LEN])
{
    snprintf(names[0], CERTGEN_NAME_LEN, "%s", service);
    snprintf(names[1], CERTGEN_NAME_LEN, "%s.%s", service, ns);
    snprintf(names[2], CERTGEN_NAME_LEN, "%s.%s.svc", service, ns);
    snprintf(names[3], CERTGEN_NAME_LEN, "%s.%s.svc.cluster.local", service, ns);
}

EVP_PKEY *
certgen_key_new(enum certgen_key_type type, char *err, size_t errlen)
{
    EVP_PKEY *key;

    if (type == CERTGEN_KEY_RSA)
        key = EVP_RSA_gen(2048);
    else
        key = EVP_EC_gen("P-256");
    if (key == NULL)
        ossl_error(err, errlen, "cannot generate key");
    return key;
}

// A positive random 128-bit serial number (RFC 5280 allows up to 20 octets; browsers and
// Kubernetes expect unpredictable serials).
static int
set_random_serial(X509 *x)
{
    unsigned char buf[16];
    BIGNUM *bn;
    int ok = 0;

    if (RAND_bytes(buf, sizeof(buf)) != 1)
        return -1;
    buf[0] &= 0x7f; // keep it positive in DER
    buf[0] |= 0x40; // and at full length, so it is never zero
    bn = BN_bin2bn(buf, sizeof(buf), NULL);
    if (bn != NULL)
        ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : -1;
}

// Serial, version 3, public key, subject and validity common to both kinds of certificate.
static X509 *
cert_skeleton(EVP_PKEY *key, const char *cn, time_t now, long days)
{
    X509 *x = X509_new();
    X509_NAME *name;

    if (x == NULL)
        return NULL;
    name = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_random_serial(x) != 0 ||
        X509_set_pubkey(x, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_time_adj_ex(X509_getm_notBefore(x), 0, -CERTGEN_BACKDATE_SECONDS, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now) == NULL) {
        X509_free(x);
        return NULL;
    }
    return x;
}

// Adds extensions given in OpenSSL's configuration syntax; the strings are constants of this
// file, never user input (names go into the SAN through GENERAL_NAME objects instead).
static int
add_exts(X509 *x, X509V3_CTX *ctx, const int *nids, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nids[i], values[i]);
        int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;

        X509_EXTENSION_free(ext);
        if (!ok)
            return -1;
    }
    return 0;
}

X509 *
certgen_ca_new(EVP_PKEY *key, const char *cn, long days, time_t now, char *err, size_t errlen)
{
    static const int nids[] = {NID_basic_constraints, NID_key_usage, NID_subject_key_identifier,
                               NID_authority_key_identifier};
    static const char *const values[] = {"critical,CA:TRUE,pathlen:0",
                                         "critical,keyCertSign,cRLSign,digitalSignature", "hash",
                                         "keyid:always"};
    X509V3_CTX ctx;
    X509 *x = cert_skeleton(key, cn, now, days);

    if (x == NULL || X509_set_issuer_name(x, X509_get_subject_name(x)) != 1)
        goto fail;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    if (X509V3_set_issuer_pkey(&ctx, key) != 1 || add_exts(x, &ctx, nids, values, 4) != 0 ||
        X509_sign(x, key, EVP_sha256()) == 0)
        goto fail;
    return x;
fail:
    ossl_error(err, errlen, "cannot create CA certificate");
    X509_free(x);
    return NULL;
}

// Appends a name of the given GEN_* type to gens, taking value (NULL when making it failed).
static int
push_name(GENERAL_NAMES *gens, int type, ASN1_STRING *value)
{
    GENERAL_NAME *gen = value != NULL ? GENERAL_NAME_new() : NULL;

    if (gen == NULL) {
        ASN1_STRING_free(value);
        return -1;
    }
    GENERAL_NAME_set0_value(gen, type, value);
    if (sk_GENERAL_NAME_push(gens, gen) == 0) {
        GENERAL_NAME_free(gen);
        return -1;
    }
    return 0;
}

static ASN1_IA5STRING *
ia5_string(const char *s)
{
    ASN1_IA5STRING *str = ASN1_IA5STRING_new();

    if (str != NULL && ASN1_STRING_set(str, s, -1) != 1) {
        ASN1_IA5STRING_free(str);
        str = NULL;
    }
    return str;
}

// The subjectAltName extension: the four names a Service is reached by, then the extras.
static int
add_san(X509 *x, const struct certgen_leaf *leaf, char *err, size_t errlen)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    char names[CERTGEN_SERVICE_NAMES][CERTGEN_NAME_LEN];
    int rc = -1;

    if (gens == NULL)
        return -1;
    certgen_service_names(leaf->service, leaf->ns, names);
    for (size_t i = 0; i < CERTGEN_SERVICE_NAMES; i++)
        if (push_name(gens, GEN_DNS, ia5_string(names[i])) != 0)
            goto out;
    for (size_t i = 0; i < leaf->ndns; i++)
        if (push_name(gens, GEN_DNS, ia5_string(leaf->dns[i])) != 0)
            goto out;
    for (size_t i = 0; i < leaf->nips; i++) {
        if (push_name(gens, GEN_IPADD, a2i_IPADDRESS(leaf->ips[i])) != 0) {
            snprintf(err, errlen, "not an IP address: \"%s\"", leaf->ips[i]);
            goto out;
        }
    }
    rc = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1 ? 0 : -1;
out:
    GENERAL_NAMES_free(gens);
    return rc;
}

X509 *
certgen_leaf_new(const struct certgen_leaf *leaf, EVP_PKEY *leaf_key, X509 *ca, EVP_PKEY *ca_key,
                 char *err, size_t errlen)
{
    static const int nids[] = {NID_basic_constraints, NID_key_usage, NID_ext_key_usage,
                               NID_subject_key_identifier, NID_authority_key_identifier};
    const char *values[] = {"critical,CA:FALSE", "critical,digitalSignature", "serverAuth", "hash",
                            "keyid:always"};
    char cn[512];
    X509V3_CTX ctx;
    X509 *x;

    err[0] = '\0';
    // RSA key exchange (TLS 1.2 without ECDHE) encrypts with the key; ECDSA keys only sign.
    if (EVP_PKEY_get_base_id(leaf_key) == EVP_PKEY_RSA)
        values[1] = "critical,digitalSignature,keyEncipherment";
    snprintf(cn, sizeof(cn), "%s.%s.svc", leaf->service, leaf->ns);
    x = cert_skeleton(leaf_key, cn, leaf->now, leaf->days);
    if (x == NULL || X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1)
        goto fail;
    // A serving certificate that outlives its CA is useless after the CA expires.
    if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) > 0 &&
        X509_set1_notAfter(x, X509_get0_notAfter(ca)) != 1)
        goto fail;
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    if (add_exts(x, &ctx, nids, values, 5) != 0 || add_san(x, leaf, err, errlen) != 0 ||
        X509_sign(x, ca_key, EVP_sha256()) == 0)
        goto fail;
    return x;
fail:
    if (err[0] == '\0')
        ossl_error(err, errlen, "cannot create serving certificate");
    ERR_clear_error();
    X509_free(x);
    return NULL;
}

static int
write_pem_fd(int fd, X509 *cert, EVP_PKEY *key)
{
    BIO *bio = BIO_new_fd(fd, BIO_NOCLOSE);
    int ok;

    if (bio == NULL)
        return -1;
    if (cert != NULL)
        ok = PEM_write_bio_X509(bio, cert);
    else
        ok = PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
    ok = ok == 1 && BIO_flush(bio) == 1;
    BIO_free(bio);
    return ok ? 0 : -1;
}

int
certgen_write_pem(const char *path, X509 *cert, EVP_PKEY *key, unsigned mode, char *err,
                  size_t errlen)
{
    char tmp[4096];
    int fd;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    // mkstemp creates the file 0600, so a key is never readable by others, not even briefly.
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    errno = 0;
    if (write_pem_fd(fd, cert, key) != 0 || fchmod(fd, mode) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "%s: cannot write: %s", tmp, errno ? strerror(errno) : "failed");
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot rename into place: %s", path, strerror(errno));
        goto fail;
    }
    file_sync_dir(path); // the rename itself is durable
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    ERR_clear_error();
    return -1;
}

char *
certgen_ca_bundle(X509 *cert, char *err, size_t errlen)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL, *out = NULL;
    long len;

    if (bio == NULL || PEM_write_bio_X509(bio, cert) != 1)
        goto out;
    len = BIO_get_mem_data(bio, &pem);
    // EVP_EncodeBlock writes 4 bytes per 3 input bytes, rounded up, then a NUL.
    out = xmalloc((size_t)(len + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)pem, (int)len);
out:
    if (out == NULL)
        ossl_error(err, errlen, "cannot encode CA bundle");
    BIO_free(bio);
    return out;
}

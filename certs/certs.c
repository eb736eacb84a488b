// SPDX-License-Identifier: Apache-2.0
// Certificate checks at load (key match, validity, service names) and loading a CA: a library
// that prints nothing; the `certs` command line over it is server/certtool.c.
#include "certs/certs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certs/certgen.h"

#define DAY_SECONDS 86400L

__attribute__((format(printf, 3, 4))) static void
add_msg(size_t *n, char (*msgs)[CERTS_MESSAGE_LEN], const char *fmt, ...)
{
    va_list ap;

    if (*n < CERTS_MAX_MESSAGES) {
        va_start(ap, fmt);
        vsnprintf(msgs[*n], CERTS_MESSAGE_LEN, fmt, ap);
        va_end(ap);
    }
    (*n)++;
}

#define REPORT_ERROR(rep, ...) add_msg(&(rep)->nerrors, (rep)->errors, __VA_ARGS__)
#define REPORT_WARNING(rep, ...) add_msg(&(rep)->nwarnings, (rep)->warnings, __VA_ARGS__)

// The reason of the newest OpenSSL error, or a fallback, with OpenSSL's queue cleared.
static const char *
ossl_reason(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();

    if (e == 0 || ERR_reason_error_string(e) == NULL)
        snprintf(buf, len, "%s", fallback);
    else
        snprintf(buf, len, "%s", ERR_reason_error_string(e));
    ERR_clear_error();
    return buf;
}

// Opens path for PEM reading, reporting a missing or unreadable file with the system's reason.
static BIO *
open_pem(const char *path, struct certs_report *rep)
{
    BIO *bio;

    errno = 0;
    bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        REPORT_ERROR(rep, "%s: cannot read: %s", path, errno ? strerror(errno) : "failed");
        ERR_clear_error();
    }
    return bio;
}

static X509 *
load_cert(const char *path, struct certs_report *rep)
{
    BIO *bio = open_pem(path, rep);
    X509 *x = NULL;
    char why[128];

    if (bio == NULL)
        return NULL;
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (x == NULL)
        REPORT_ERROR(rep, "%s: not a PEM certificate (%s)", path,
                     ossl_reason(why, sizeof(why), "no certificate found"));
    BIO_free(bio);
    return x;
}

// A daemon has no one to type a passphrase: refuse instead of letting OpenSSL prompt.
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(int *)u = 1;
    return -1;
}

static EVP_PKEY *
load_key(const char *path, struct certs_report *rep)
{
    BIO *bio = open_pem(path, rep);
    EVP_PKEY *key;
    int encrypted = 0;
    char why[128];

    if (bio == NULL)
        return NULL;
    key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted);
    if (key == NULL && encrypted) {
        REPORT_ERROR(rep, "%s: private key is encrypted; a passphrase-less key is required", path);
        ERR_clear_error();
    } else if (key == NULL) {
        REPORT_ERROR(rep, "%s: not a PEM private key (%s)", path,
                     ossl_reason(why, sizeof(why), "no key found"));
    }
    BIO_free(bio);
    return key;
}

time_t
certs_time(const ASN1_TIME *t)
{
    struct tm tm;

    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

static void
name_text(const X509_NAME *name, char *out, size_t outlen)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int n;

    out[0] = '\0';
    if (bio == NULL)
        return;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_read(bio, out, (int)outlen - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
}

// Appends to a bounded string, silently truncating: the text is for people, not parsing.
__attribute__((format(printf, 3, 4))) static void
append(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strlen(buf);
    va_list ap;

    if (used + 1 >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

static void
sans_text(X509 *x, char *out, size_t outlen)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char ip[INET6_ADDRSTRLEN];

    out[0] = '\0';
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gen = sk_GENERAL_NAME_value(gens, i);
        const char *sep = i ? ", " : "";
        int type;
        const ASN1_STRING *s = GENERAL_NAME_get0_value(gen, &type);

        if (type == GEN_DNS) {
            append(out, outlen, "%sDNS:%.*s", sep, ASN1_STRING_length(s),
                   (const char *)ASN1_STRING_get0_data(s));
        } else if (type == GEN_IPADD &&
                   (ASN1_STRING_length(s) == 4 || ASN1_STRING_length(s) == 16)) {
            inet_ntop(ASN1_STRING_length(s) == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), ip,
                      sizeof(ip));
            append(out, outlen, "%sIP:%s", sep, ip);
        } else {
            append(out, outlen, "%s(name of type %d)", sep, type);
        }
    }
    GENERAL_NAMES_free(gens);
}

static void
key_type_text(EVP_PKEY *key, char *out, size_t outlen)
{
    char group[48];
    size_t glen = 0;

    if (key == NULL) {
        snprintf(out, outlen, "unknown");
    } else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
               EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) == 1) {
        const char *nist = EC_curve_nid2nist(OBJ_sn2nid(group));
        snprintf(out, outlen, "ECDSA %s", nist ? nist : group);
    } else {
        const char *type = EVP_PKEY_get0_type_name(key);
        snprintf(out, outlen, "%s %d", type ? type : OBJ_nid2sn(EVP_PKEY_get_base_id(key)),
                 EVP_PKEY_get_bits(key));
    }
}

// Fills the descriptive fields of rep from x.
static void
describe(X509 *x, struct certs_report *rep)
{
    rep->not_before = certs_time(X509_get0_notBefore(x));
    rep->not_after = certs_time(X509_get0_notAfter(x));
    name_text(X509_get_subject_name(x), rep->subject, sizeof(rep->subject));
    name_text(X509_get_issuer_name(x), rep->issuer, sizeof(rep->issuer));
    sans_text(x, rep->sans, sizeof(rep->sans));
    key_type_text(X509_get0_pubkey(x), rep->key_type, sizeof(rep->key_type));
}

static void
check_validity(const char *path, time_t now, struct certs_report *rep)
{
    long left = (long)(rep->not_after - now);

    if (rep->not_after == 0 || rep->not_before == 0)
        REPORT_ERROR(rep, "%s: unreadable validity dates", path);
    else if (now < rep->not_before)
        REPORT_ERROR(rep, "%s: not valid until %ld seconds from now", path,
                     (long)(rep->not_before - now));
    else if (left <= 0)
        REPORT_ERROR(rep, "%s: expired %ld days ago", path, -left / DAY_SECONDS);
    else if (left < CERTS_WARN_DAYS * DAY_SECONDS)
        REPORT_WARNING(rep, "%s: expires in %ld days (%ld hours)", path, left / DAY_SECONDS,
                       left / 3600);
}

// Matches names the way the API server's Go client does: SANs only, never the subject CN.
static void
check_service_names(X509 *x, const char *path, const char *service, const char *ns,
                    struct certs_report *rep)
{
    char names[CERTGEN_SERVICE_NAMES][CERTGEN_NAME_LEN], missing[CERTS_MESSAGE_LEN] = "";
    unsigned flags = X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;

    certgen_service_names(service, ns, names);
    if (X509_check_host(x, names[2], 0, flags, NULL) != 1)
        REPORT_WARNING(rep,
                       "%s: does not cover %s, the name the API server dials; webhook calls "
                       "will fail TLS verification",
                       path, names[2]);
    for (size_t i = 0; i < CERTGEN_SERVICE_NAMES; i++)
        if (i != 2 && X509_check_host(x, names[i], 0, flags, NULL) != 1)
            append(missing, sizeof(missing), "%s%s", missing[0] ? ", " : "", names[i]);
    if (missing[0] != '\0')
        REPORT_WARNING(rep, "%s: lacks the Service DNS names %s", path, missing);
}

int
certs_check_pair(const char *cert_path, const char *key_path, const char *service, const char *ns,
                 time_t now, struct certs_report *rep)
{
    X509 *x;
    EVP_PKEY *key = NULL;

    memset(rep, 0, sizeof(*rep));
    rep->key_match = -1;
    x = load_cert(cert_path, rep);
    if (key_path != NULL)
        key = load_key(key_path, rep);
    if (x != NULL) {
        describe(x, rep);
        check_validity(cert_path, now, rep);
        if (X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0) != 1)
            REPORT_WARNING(rep, "%s: not marked for TLS server use (keyUsage/extendedKeyUsage)",
                           cert_path);
        if (service != NULL && ns != NULL)
            check_service_names(x, cert_path, service, ns, rep);
    }
    if (x != NULL && key != NULL) {
        rep->key_match = EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1;
        if (!rep->key_match)
            REPORT_ERROR(rep, "%s: private key does not match the certificate %s", key_path,
                         cert_path);
    }
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(x);
    return rep->nerrors == 0 ? 0 : -1;
}

int
certs_load_ca(const char *crt, const char *key, time_t now, X509 **ca, EVP_PKEY **ca_key,
              struct certs_report *rep)
{
    int have_crt, have_key;

    *ca = NULL;
    *ca_key = NULL;
    memset(rep, 0, sizeof(*rep));
    have_crt = access(crt, F_OK) == 0;
    have_key = access(key, F_OK) == 0;
    if (!have_crt && !have_key)
        return 0;
    if (have_crt && have_key && certs_check_pair(crt, key, NULL, NULL, now, rep) == 0) {
        *ca = load_cert(crt, rep);
        *ca_key = load_key(key, rep);
        if (*ca != NULL && *ca_key != NULL && X509_check_ca(*ca) >= 1)
            return 0;
        REPORT_ERROR(rep, "%s: not a CA certificate", crt);
        X509_free(*ca);
        EVP_PKEY_free(*ca_key);
        *ca = NULL;
        *ca_key = NULL;
    } else if (!have_crt || !have_key) {
        memset(rep, 0, sizeof(*rep));
        REPORT_ERROR(rep, "%s: missing while %s exists", have_crt ? key : crt,
                     have_crt ? crt : key);
    }
    return -1;
}

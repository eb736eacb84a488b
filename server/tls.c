// SPDX-License-Identifier: Apache-2.0
// TLS for the HTTPS listener: priorities, the certificate callback, rotation, client CAs.
#include "server/tls.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs/certs.h"
#include "util/file.h"
#include "util/xalloc.h"

// AEAD ciphers with ECDHE key exchange only, TLS 1.2 and 1.3; Debian's NORMAL still has TLS 1.0
// and CBC suites. %SERVER_PRECEDENCE lets our order win.
#define PRIO_BASE                                                                                  \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:%s-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"    \
    "-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"    \
    "+GROUP-SECP384R1:%%SERVER_PRECEDENCE"

// One loaded certificate chain and key. Certificates replaced by a rotation are kept until the
// process exits: a connection that handshook with one may still use it, GnuTLS does not count
// references, and a rotation adds a few kilobytes at most once per renewal.
struct cert {
    gnutls_pcert_st *pcerts;
    unsigned int npcerts;
    gnutls_privkey_t key;
    time_t not_after;
    unsigned char digest[32]; // of the two files' bytes, to notice a change
    struct cert *retired_next;
};

// Client chains that verified, by the digest of the chain as presented, until the earliest
// notAfter in it: verifying a chain costs a few signature checks (about 250 us of CPU, four
// times the rest of a request), and the API server sends every request with the same
// certificate. A TLS handshake proves possession of the key each time, so a chain seen before
// needs only its bytes compared.
#define VERIFIED_SLOTS 8
struct verified {
    unsigned char chain[32];
    time_t until; // 0: empty slot
};

struct tls {
    char *cert_path, *key_path, *ca_path, *priorities, *service, *ns;
    char *ca_pem;
    pthread_mutex_t lock;        // guards current, retired and the counts; handshakes take it
    pthread_mutex_t reload_lock; // one reload at a time (the watcher and SIGHUP may race)
    struct cert *current;
    struct cert *retired;
    unsigned long reload_ok, reload_failed;
    unsigned char refused[32]; // digest of the last refused content, to report it once
    bool refused_set;
    time_t ca_not_after; // the earliest notAfter among the client CA certificates
    pthread_mutex_t verified_lock;
    struct verified verified[VERIFIED_SLOTS];
    unsigned verified_next;
};

// GnuTLS's retrieve callback carries no user pointer; one server serves one certificate slot.
static struct tls *callback_tls;

const char *
tls_priorities(const char *min_version)
{
    static char v12[512], v13[512];
    if (min_version == NULL || strcmp(min_version, "1.2") == 0) {
        snprintf(v12, sizeof v12, PRIO_BASE, "+VERS-TLS1.2:");
        return v12;
    }
    if (strcmp(min_version, "1.3") == 0) {
        snprintf(v13, sizeof v13, PRIO_BASE, "");
        return v13;
    }
    return NULL;
}

// Certificates, keys and CA bundles are a few KiB; the cap leaves room for long chains.
#define TLS_MAX_FILE (4u << 20)

static char *
read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    char why[256];
    char *buf = file_read(path, TLS_MAX_FILE, len, why, sizeof why);
    if (buf == NULL)
        snprintf(err, errlen, "%s: %s", path, why);
    return buf;
}

static void
cert_free(struct cert *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->npcerts; i++)
        gnutls_pcert_deinit(&c->pcerts[i]);
    free(c->pcerts);
    gnutls_privkey_deinit(c->key);
    free(c);
}

// Both files' bytes and their digest, read once so that what was checked is what gets installed.
struct pair {
    char *cert, *key;
    size_t cert_len, key_len;
    unsigned char digest[32];
};

static void
pair_free(struct pair *p)
{
    free(p->cert);
    if (p->key != NULL)
        explicit_bzero(p->key, p->key_len);
    free(p->key);
    p->cert = p->key = NULL;
    p->cert_len = p->key_len = 0;
}

static void
digest_of(const void *a, size_t alen, const void *b, size_t blen, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int dlen = 0;
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, a, alen) != 1 || EVP_DigestUpdate(md, b, blen) != 1 ||
        EVP_DigestFinal_ex(md, out, &dlen) != 1)
        memset(out, 0, 32);
    EVP_MD_CTX_free(md);
}

// Reads both files. On failure the digest is taken over the error text, so that it still
// identifies the failure and a poll does not report the same missing file again and again.
static int
pair_read(const struct tls *t, struct pair *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->cert = read_file(t->cert_path, &p->cert_len, err, errlen);
    p->key = p->cert ? read_file(t->key_path, &p->key_len, err, errlen) : NULL;
    if (p->key == NULL) {
        pair_free(p);
        digest_of(err, strlen(err), "", 0, p->digest);
        return -1;
    }
    digest_of(p->cert, p->cert_len, p->key, p->key_len, p->digest);
    return 0;
}

// Every error of the report on one line, "first; second; ...".
static void
report_errors(const struct tls *t, const struct certs_report *rep, char *err, size_t errlen)
{
    size_t n = rep->nerrors < CERTS_MAX_MESSAGES ? rep->nerrors : CERTS_MAX_MESSAGES;
    size_t used = 0;
    if (n == 0) {
        snprintf(err, errlen, "%s: certificate check failed", t->cert_path);
        return;
    }
    err[0] = '\0';
    for (size_t i = 0; i < n && used < errlen; i++) {
        int w = snprintf(err + used, errlen - used, "%s%s", i ? "; " : "", rep->errors[i]);
        if (w < 0)
            return;
        used += (size_t)w;
    }
    if (rep->nerrors > n && used < errlen)
        snprintf(err + used, errlen - used, "; and %zu more", rep->nerrors - n);
}

// Checks the pair on disk and returns its bytes in *p. certs_check_pair reads the files by path,
// so they are read before and after the check: a rotation that lands in between (the kubelet
// swapping "..data") makes the digests differ and the check runs again on the new files.
static int
pair_check(const struct tls *t, struct pair *p, struct certs_report *rep, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        if (pair_read(t, p, err, errlen) != 0)
            return -1;
        if (certs_check_pair(t->cert_path, t->key_path, t->service, t->ns, time(NULL), rep) != 0) {
            report_errors(t, rep, err, errlen);
            pair_free(p);
            // The digest of the bytes read stays in *p: it names the refused content.
            return -1;
        }
        struct pair again;
        if (pair_read(t, &again, err, errlen) != 0) {
            pair_free(p);
            *p = again;
            return -1;
        }
        bool same = memcmp(p->digest, again.digest, sizeof p->digest) == 0;
        pair_free(&again);
        if (same)
            return 0;
        pair_free(p);
    }
    snprintf(err, errlen, "%s: kept changing while being read", t->cert_path);
    return -1;
}

// Imports checked bytes into GnuTLS structures.
static struct cert *
cert_import(const struct tls *t, const struct pair *p, time_t not_after, char *err, size_t errlen)
{
    struct cert *c = xcalloc(1, sizeof *c);
    c->not_after = not_after;
    memcpy(c->digest, p->digest, sizeof c->digest);
    gnutls_datum_t cd = {(unsigned char *)p->cert, (unsigned int)p->cert_len};
    gnutls_datum_t kd = {(unsigned char *)p->key, (unsigned int)p->key_len};
    unsigned int max = 16;
    c->pcerts = xcalloc(max, sizeof *c->pcerts);
    c->npcerts = max;
    int rc = gnutls_pcert_list_import_x509_raw(c->pcerts, &c->npcerts, &cd, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        c->npcerts = 0;
        snprintf(err, errlen, "%s: %s", t->cert_path, gnutls_strerror(rc));
        cert_free(c);
        return NULL;
    }
    if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errlen, "%s: %s", t->key_path, gnutls_strerror(rc));
        cert_free(c);
        return NULL;
    }
    return c;
}

// Checks and imports the pair; *digest gets the digest of what was read, loaded or refused.
static struct cert *
cert_load(const struct tls *t, void (*warn)(const char *), unsigned char digest[32], char *err,
          size_t errlen)
{
    struct certs_report rep;
    struct pair p;
    int rc = pair_check(t, &p, &rep, err, errlen);
    memcpy(digest, p.digest, 32);
    if (rc != 0)
        return NULL;
    struct cert *c = cert_import(t, &p, rep.not_after, err, errlen);
    pair_free(&p);
    for (size_t i = 0; c != NULL && warn != NULL && i < rep.nwarnings && i < CERTS_MAX_MESSAGES;
         i++)
        warn(rep.warnings[i]);
    return c;
}

struct tls *
tls_new(const struct tls_options *o, void (*warn)(const char *), char *err, size_t errlen)
{
    const char *prio = tls_priorities(o->min_version);
    if (prio == NULL) {
        snprintf(err, errlen, "--tls-min-version must be 1.2 or 1.3, not \"%s\"", o->min_version);
        return NULL;
    }
    struct tls *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->reload_lock, NULL);
    pthread_mutex_init(&t->verified_lock, NULL);
    t->cert_path = xstrdup(o->cert_path);
    t->key_path = xstrdup(o->key_path);
    t->priorities = xstrdup(prio);
    t->service = o->service ? xstrdup(o->service) : NULL;
    t->ns = o->namespace ? xstrdup(o->namespace) : NULL;
    if (o->client_ca_path != NULL) {
        size_t len;
        t->ca_path = xstrdup(o->client_ca_path);
        t->ca_pem = read_file(o->client_ca_path, &len, err, errlen);
        if (t->ca_pem == NULL)
            goto fail;
        gnutls_x509_crt_t *list = NULL;
        unsigned int n = 0;
        gnutls_datum_t d = {(unsigned char *)t->ca_pem, (unsigned int)len};
        int rc = gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM, 0);
        for (unsigned i = 0; rc >= 0 && i < n; i++) {
            time_t na = gnutls_x509_crt_get_expiration_time(list[i]);
            if (t->ca_not_after == 0 || na < t->ca_not_after)
                t->ca_not_after = na;
            gnutls_x509_crt_deinit(list[i]);
        }
        gnutls_free(list);
        if (rc < 0 || n == 0) {
            snprintf(err, errlen, "%s: no usable CA certificate (%s)", o->client_ca_path,
                     rc < 0 ? gnutls_strerror(rc) : "empty");
            goto fail;
        }
    }
    unsigned char digest[32];
    t->current = cert_load(t, warn, digest, err, errlen);
    if (t->current == NULL)
        goto fail;
    callback_tls = t;
    return t;
fail:
    tls_free(t);
    return NULL;
}

void
tls_free(struct tls *t)
{
    if (t == NULL)
        return;
    if (callback_tls == t)
        callback_tls = NULL;
    cert_free(t->current);
    while (t->retired != NULL) {
        struct cert *next = t->retired->retired_next;
        cert_free(t->retired);
        t->retired = next;
    }
    free(t->cert_path);
    free(t->key_path);
    free(t->ca_path);
    free(t->ca_pem);
    free(t->priorities);
    free(t->service);
    free(t->ns);
    pthread_mutex_destroy(&t->lock);
    pthread_mutex_destroy(&t->reload_lock);
    pthread_mutex_destroy(&t->verified_lock);
    free(t);
}

// Runs under reload_lock, which also guards `refused`.
static int
reload_locked(struct tls *t, bool *changed, void (*warn)(const char *), char *err, size_t errlen)
{
    *changed = false;
    // The common case, a poll finding nothing new, reads the files and stops: no check, no
    // repeated warnings.
    struct pair p;
    if (pair_read(t, &p, err, errlen) == 0) {
        pthread_mutex_lock(&t->lock);
        bool same = memcmp(p.digest, t->current->digest, sizeof p.digest) == 0;
        pthread_mutex_unlock(&t->lock);
        pair_free(&p);
        if (same) {
            t->refused_set = false; // back to the serving pair: the refusal no longer stands
            return 0;
        }
    }
    unsigned char digest[32];
    struct cert *c = cert_load(t, warn, digest, err, errlen);
    if (c == NULL) {
        // A pair already refused is checked again (a certificate not yet valid becomes valid)
        // but reported and counted once.
        bool again = t->refused_set && memcmp(digest, t->refused, sizeof digest) == 0;
        memcpy(t->refused, digest, sizeof digest);
        t->refused_set = true;
        if (again)
            return 0;
        pthread_mutex_lock(&t->lock);
        t->reload_failed++;
        pthread_mutex_unlock(&t->lock);
        return -1;
    }
    t->refused_set = false;
    pthread_mutex_lock(&t->lock);
    c->retired_next = NULL;
    t->current->retired_next = t->retired;
    t->retired = t->current;
    t->current = c;
    t->reload_ok++;
    pthread_mutex_unlock(&t->lock);
    *changed = true;
    return 0;
}

int
tls_reload(struct tls *t, bool *changed, void (*warn)(const char *), char *err, size_t errlen)
{
    pthread_mutex_lock(&t->reload_lock);
    int rc = reload_locked(t, changed, warn, err, errlen);
    pthread_mutex_unlock(&t->reload_lock);
    return rc;
}

static int
retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
         unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session;
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct tls *t = callback_tls;
    if (t == NULL)
        return -1;
    pthread_mutex_lock(&t->lock);
    *pcert = t->current->pcerts;
    *pcert_length = t->current->npcerts;
    *pkey = t->current->key;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

size_t
tls_mhd_options(struct tls *t, struct MHD_OptionItem *opts)
{
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, t->priorities};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)&retrieve};
    if (t->ca_pem != NULL)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, t->ca_pem};
    return n;
}

// The digest of the presented chain.
static int
chain_id(const gnutls_datum_t *peers, unsigned n, unsigned char id[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
    for (unsigned i = 0; rc == 0 && i < n; i++)
        if (EVP_DigestUpdate(md, peers[i].data, peers[i].size) != 1)
            rc = -1;
    unsigned int dlen = 0;
    if (rc == 0 && EVP_DigestFinal_ex(md, id, &dlen) != 1)
        rc = -1;
    EVP_MD_CTX_free(md);
    return rc;
}

// The earliest notAfter of the presented chain and the client CAs; 0 when one does not parse.
static time_t
chain_until(const struct tls *t, const gnutls_datum_t *peers, unsigned n)
{
    time_t until = t->ca_not_after;
    for (unsigned i = 0; i < n; i++) {
        gnutls_x509_crt_t crt;
        if (gnutls_x509_crt_init(&crt) < 0)
            return 0;
        time_t na = gnutls_x509_crt_import(crt, &peers[i], GNUTLS_X509_FMT_DER) < 0
                        ? 0
                        : gnutls_x509_crt_get_expiration_time(crt);
        gnutls_x509_crt_deinit(crt);
        if (na <= 0)
            return 0;
        if (na < until)
            until = na;
    }
    return until;
}

int
tls_verify_client(struct tls *t, struct MHD_Connection *c)
{
    if (t->ca_pem == NULL)
        return 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL)
        return -1;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    if (gnutls_certificate_type_get(s) != GNUTLS_CRT_X509)
        return -1;
    unsigned int n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
    if (peers == NULL || n == 0)
        return -1;
    unsigned char id[32];
    time_t now = time(NULL);
    bool cacheable = chain_id(peers, n, id) == 0;
    if (cacheable) {
        pthread_mutex_lock(&t->verified_lock);
        for (unsigned i = 0; i < VERIFIED_SLOTS; i++) {
            const struct verified *v = &t->verified[i];
            if (v->until > now && memcmp(v->chain, id, sizeof id) == 0) {
                pthread_mutex_unlock(&t->verified_lock);
                return 0;
            }
        }
        pthread_mutex_unlock(&t->verified_lock);
    }
    // The chain must lead to the client CA, be within its validity and, when the certificate
    // names its purposes, allow TLS client authentication (a serving certificate signed by the
    // same CA is not a client certificate).
    unsigned int status = 0;
    gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID, (void *)GNUTLS_KP_TLS_WWW_CLIENT,
                                     0};
    if (gnutls_certificate_verify_peers(s, &purpose, 1, &status) < 0 || status != 0)
        return -1;
    time_t until = cacheable ? chain_until(t, peers, n) : 0;
    if (until > now) {
        pthread_mutex_lock(&t->verified_lock);
        struct verified *v = &t->verified[t->verified_next++ % VERIFIED_SLOTS];
        memcpy(v->chain, id, sizeof id);
        v->until = until;
        pthread_mutex_unlock(&t->verified_lock);
    }
    return 0;
}

time_t
tls_not_after(struct tls *t)
{
    pthread_mutex_lock(&t->lock);
    time_t v = t->current->not_after;
    pthread_mutex_unlock(&t->lock);
    return v;
}

void
tls_reload_counts(struct tls *t, unsigned long *ok, unsigned long *failed)
{
    pthread_mutex_lock(&t->lock);
    *ok = t->reload_ok;
    *failed = t->reload_failed;
    pthread_mutex_unlock(&t->lock);
}

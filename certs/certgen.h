// SPDX-License-Identifier: Apache-2.0
// Creation of keys, a CA and serving certificates on OpenSSL 3, and their atomic writing as PEM.
#ifndef TABLEGUARD_CERTGEN_H
#define TABLEGUARD_CERTGEN_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

// Ownership: every EVP_PKEY and X509 returned here belongs to the caller (EVP_PKEY_free,
// X509_free); arguments are borrowed. Functions that can fail write one line into err
// (at most errlen bytes, always terminated) and return NULL or -1.

enum certgen_key_type {
    CERTGEN_KEY_ECDSA, // ECDSA on P-256 (the default: small and fast handshakes)
    CERTGEN_KEY_RSA,   // RSA 2048
};

// What a serving certificate says. Validity runs from now - 5 minutes (clock skew between
// nodes) to now + days; the caller passes the clock, so tests can make expired certificates.
struct certgen_leaf {
    const char *service;    // Kubernetes Service name; gives the four service DNS names
    const char *ns;         // its namespace
    const char *const *dns; // extra DNS names, ndns of them
    size_t ndns;
    const char *const *ips; // extra IP addresses (IPv4 or IPv6 text), nips of them
    size_t nips;
    long days;
    time_t now;
};

#define CERTGEN_SERVICE_NAMES 4
#define CERTGEN_NAME_LEN 256

// The DNS names a Service is reached by, in this order: <service>, <service>.<ns>,
// <service>.<ns>.svc (the one the API server dials) and <service>.<ns>.svc.cluster.local.
void certgen_service_names(const char *service, const char *ns,
                           char names[CERTGEN_SERVICE_NAMES][CERTGEN_NAME_LEN]);

// A new private key of the given type, or NULL.
EVP_PKEY *certgen_key_new(enum certgen_key_type type, char *err, size_t errlen);

// A self-signed CA certificate for key, named "CN=<cn>", valid for days from now (backdated by
// the same 5 minutes as leaves), basicConstraints CA:TRUE pathlen:0, keyCertSign and cRLSign,
// subject and authority key identifiers. Returns NULL on failure.
X509 *certgen_ca_new(EVP_PKEY *key, const char *cn, long days, time_t now, char *err,
                     size_t errlen);

// A serving certificate for leaf_key signed by ca/ca_key: subject CN=<service>.<ns>.svc, DNS SANs
// <service>, <service>.<ns>, <service>.<ns>.svc, <service>.<ns>.svc.cluster.local, then the
// extra DNS names and IPs; extendedKeyUsage serverAuth, keyUsage digitalSignature (and
// keyEncipherment for RSA keys), CA:FALSE, key identifiers and a random 128-bit serial.
// notAfter is capped at the CA's notAfter. Returns NULL on failure (a bad IP is named in err).
X509 *certgen_leaf_new(const struct certgen_leaf *leaf, EVP_PKEY *leaf_key, X509 *ca,
                       EVP_PKEY *ca_key, char *err, size_t errlen);

// Writes cert (when key is NULL) or key (when cert is NULL) as PEM to path through a temporary
// file in the same directory, fsync and rename, so a reader sees the old or the new file and
// never a half-written one. Keys are PKCS#8 "PRIVATE KEY". mode is applied before rename.
// Returns 0 or -1.
int certgen_write_pem(const char *path, X509 *cert, EVP_PKEY *key, unsigned mode, char *err,
                      size_t errlen);

// The PEM text of cert, base64-encoded on one line (EVP_EncodeBlock): the caBundle field of a
// webhook configuration. Returns a malloc'd string the caller frees, or NULL.
char *certgen_ca_bundle(X509 *cert, char *err, size_t errlen);

#endif

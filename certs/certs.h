// SPDX-License-Identifier: Apache-2.0
// Certificate checks at load (key match, validity, service names) and loading a CA: a library
// that prints nothing (the `certs` command line is server/certtool.c).
#ifndef TABLEGUARD_CERTS_H
#define TABLEGUARD_CERTS_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#define CERTS_MAX_MESSAGES 8
#define CERTS_MESSAGE_LEN 512

// What certs_check_pair found: a plain value record the caller owns (it holds no pointers, so
// it needs no freeing and can be copied). Messages are one line each and name the file.
struct certs_report {
    // Reasons the pair is unusable: unreadable or unparsable file, key does not match the
    // certificate, expired, not yet valid. Beyond CERTS_MAX_MESSAGES the count still rises
    // but the text is dropped.
    size_t nerrors;
    char errors[CERTS_MAX_MESSAGES][CERTS_MESSAGE_LEN];
    // Worth telling but usable: expires within CERTS_WARN_DAYS days; lacks one of the
    // Service's DNS names; not marked for TLS server use.
    size_t nwarnings;
    char warnings[CERTS_MAX_MESSAGES][CERTS_MESSAGE_LEN];

    // Filled whenever the certificate could be parsed; zero/empty otherwise.
    time_t not_before;
    time_t not_after;  // for the expiry metric
    char subject[256]; // RFC 2253, e.g. "CN=tableguard.tableguard.svc"
    char issuer[256];
    char sans[1024];   // "DNS:a, DNS:b, IP:127.0.0.1"
    char key_type[64]; // of the certificate's public key: "ECDSA P-256", "RSA 2048"
    int key_match;     // 1 matches, 0 does not, -1 not checked (no key given or unreadable)
};

#define CERTS_WARN_DAYS 30

// Checks a PEM certificate (the first one in cert_path is the serving certificate; any
// following ones are its chain) against the PEM private key in key_path at time now. key_path
// may be NULL to check the certificate alone. When service and ns are both non-NULL, warns for
// each of <service>.<ns>.svc and the other Service names the certificate does not cover (the
// API server dials <service>.<ns>.svc and, like Go, ignores the subject CN). Encrypted keys are
// reported as errors, never prompted for. Overwrites *rep. Returns 0 when the pair is usable
// (warnings allowed), -1 otherwise (rep->errors says why). Never prints; safe to call from any
// thread (it keeps no state between calls).
int certs_check_pair(const char *cert_path, const char *key_path, const char *service,
                     const char *ns, time_t now, struct certs_report *rep);

// Loads the CA in crt (PEM certificate) and key (PEM private key) when both files exist and
// make a usable CA certificate at now. Returns 0 with *ca and *ca_key set (the caller frees them
// with X509_free and EVP_PKEY_free), or 0 with both NULL when neither file exists; -1 with both
// NULL and rep->errors saying why when they exist but cannot serve (one missing, an unusable
// pair, not a CA). Overwrites *rep.
int certs_load_ca(const char *crt, const char *key, time_t now, X509 **ca, EVP_PKEY **ca_key,
                  struct certs_report *rep);

// An ASN.1 time (a certificate's notBefore or notAfter) as Unix seconds; 0 when unreadable.
time_t certs_time(const ASN1_TIME *t);

#endif

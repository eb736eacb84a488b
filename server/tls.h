// SPDX-License-Identifier: Apache-2.0
// The serving certificate and TLS policy: GnuTLS priorities, a certificate callback that hands
// each new handshake the current certificate (so rotation needs no restart), and client
// certificate verification.
#ifndef TABLEGUARD_TLS_H
#define TABLEGUARD_TLS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct tls_options {
    const char *cert_path;
    const char *key_path;
    const char *client_ca_path;      // NULL: no client certificates asked for
    const char *min_version;         // "1.2" or "1.3"
    const char *service, *namespace; // for the SAN warning, may be NULL
};

struct tls;

// Loads and checks the pair (the key matches, not expired). Warnings (near expiry, missing
// service names) go to `warn` (may be NULL) one line each. Returns NULL with err filled on error.
struct tls *tls_new(const struct tls_options *o, void (*warn)(const char *msg), char *err,
                    size_t errlen);
void tls_free(struct tls *t);

// Re-reads the pair from its paths; safe to call from several threads (reloads are serialised).
// When the bytes are those being served returns 0 and sets *changed to false, without checking
// or warning again; when a new valid pair is there, installs it for new handshakes, warns as
// tls_new does and sets *changed. A bad new pair is refused (-1, err filled with every reason,
// the reload_failed count rises) and the current one keeps serving; the same bad bytes met again
// are re-checked but return 0 unchanged, so a poll does not report them twice.
int tls_reload(struct tls *t, bool *changed, void (*warn)(const char *msg), char *err,
               size_t errlen);

// The daemon options for libmicrohttpd: the priority string, the certificate callback and, with
// a client CA, the trust store. Fills at most 4 items of `opts` and returns how many.
size_t tls_mhd_options(struct tls *t, struct MHD_OptionItem *opts);

// With a client CA configured: 0 when the connection presented a chain that leads to the CA, is
// within its validity and allows clientAuth (when it names purposes), -1 otherwise. Chains that
// verified are remembered (a few, until their earliest notAfter). Without a CA: always 0.
int tls_verify_client(struct tls *t, struct MHD_Connection *c);

// The serving certificate's notAfter, for the expiry metric.
time_t tls_not_after(struct tls *t);
// The number of successful and refused reloads since start.
void tls_reload_counts(struct tls *t, unsigned long *ok, unsigned long *failed);

// The GnuTLS priority string for a minimum version "1.2" or "1.3" (NULL for anything else).
const char *tls_priorities(const char *min_version);

#endif

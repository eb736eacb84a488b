// SPDX-License-Identifier: Apache-2.0
// The TLS transport under each HTTPS connection: GnuTLS reads and writes the socket through
// these functions instead of its own. Reads take what the socket holds at once (a small review
// is one read instead of two: the record header, then the record); an answer's header record
// is kept and written with the first record of its body in one sendmsg instead of two.
#ifndef TABLEGUARD_WIRE_H
#define TABLEGUARD_WIRE_H

#include <stdbool.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

struct wire;

// A connection's wire, from libmicrohttpd's connection notification; NULL when its socket is
// unknown. The caller keeps it with the connection (http.c: in its socket context). Free with
// wire_free after libmicrohttpd closed the connection (its TLS session is gone by then).
struct wire *wire_new(struct MHD_Connection *c);
void wire_free(struct wire *w);

// Takes over the transport of the connection's TLS session, once its handshake is done (call
// for every request; only the first does anything). A connection with kernel TLS, or without a
// TLS session, keeps its transport, and its answers are written as before.
void wire_start(struct wire *w, struct MHD_Connection *c);

// The same over a socket and a TLS session whose handshake is done, without libmicrohttpd
// (wire_start does this for a connection; the unit tests drive it directly).
struct wire *wire_new_fd(int fd);
void wire_take(struct wire *w, gnutls_session_t s);

// Whether the request being read is a HEAD: its answer has no body, so nothing is kept.
void wire_request(struct wire *w, bool head);

// The answer about to be queued has a body of body_len bytes: keep its header record for the
// body's first record. Call right before MHD_queue_response; wire_answer_failed if it fails.
void wire_answer(struct wire *w, size_t body_len);
void wire_answer_failed(struct wire *w);

#endif

// SPDX-License-Identifier: Apache-2.0
// The TLS transport under each HTTPS connection: GnuTLS reads and writes the socket through
// these functions instead of its own. Reads take what the socket holds at once (a small review
// is one read instead of two: the record header, then the record); an answer's header record
// is kept and written with the first record of its body in one sendmsg instead of two.
#ifndef TABLEGUARD_WIRE_H
#define TABLEGUARD_WIRE_H

#include <stdbool.h>

#include <microhttpd.h>

struct wire;

// Takes over the transport of a new connection's TLS session (from libmicrohttpd's connection
// notification, before the handshake). NULL when the connection has no TLS session: it then
// keeps libmicrohttpd's transport. Free with wire_free after libmicrohttpd closed the session.
struct wire *wire_attach(struct MHD_Connection *c);
void wire_free(struct wire *w);

// The wire of a connection, or NULL (a connection without TLS).
struct wire *wire_of(struct MHD_Connection *c);

// Whether the request being read is a HEAD: its answer has no body, so nothing is kept.
void wire_request(struct wire *w, bool head);

// The answer about to be queued has a body of body_len bytes: keep its header record for the
// body's first record. Call right before MHD_queue_response; wire_answer_failed if it fails.
void wire_answer(struct wire *w, size_t body_len);
void wire_answer_failed(struct wire *w);

#endif

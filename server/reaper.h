// SPDX-License-Identifier: Apache-2.0
// The header deadline: a request whose headers are not complete within --request-timeout of its
// first bytes has its connection shut down, whatever the client sends meanwhile. libmicrohttpd
// resets a connection's idle timeout on every byte and calls the handler only once the headers
// are complete, so without this a client sending a header line every few seconds holds its
// connection (and, with enough of them, the connection limit) for ever.
#ifndef TABLEGUARD_REAPER_H
#define TABLEGUARD_REAPER_H

#include <stddef.h>
#include <time.h>

#include <microhttpd.h>

#include "server/metrics.h"

struct reaper;
struct reaper_conn; // one connection, from accept to close

// A reaper for requests that take over `timeout_s` seconds to send their headers; closes are
// counted in `m` (rejected, reason request_timeout). `record_of` finds a connection's record
// (the one reaper_opened returned, kept by the caller), on the connection's thread.
struct reaper *reaper_new(unsigned timeout_s, struct metrics *m,
                          struct reaper_conn *(*record_of)(struct MHD_Connection *c));

// Starts its thread (a check four times a second). Returns 0, or -1 with err filled.
int reaper_start(struct reaper *r, char *err, size_t errlen);

// Stops its thread; the connection calls below stay valid until reaper_free.
void reaper_stop(struct reaper *r);

// Frees it, after the daemon whose connections it watches has stopped. NULL: a no-op.
void reaper_free(struct reaper *r);

// From the connection notice: a connection was accepted at `accepted` (CLOCK_MONOTONIC; NULL:
// now), and its first request begins with its TLS handshake, whose deadline counts from then;
// returns its record (NULL with r NULL). Then it is closing: its record is freed, and the
// socket never touched again. Both take NULL.
struct reaper_conn *reaper_opened(struct reaper *r, struct MHD_Connection *c,
                                  const struct timespec *accepted);
void reaper_closed(struct reaper *r, struct reaper_conn *rc);

// The calls below take NULL (no record: nothing to do).

// The request line was read: its request runs from now, or from its first bytes if earlier.
void reaper_request_line(struct reaper_conn *rc);

// The headers are complete: from here the request's own deadline applies (see http.c).
void reaper_headers_done(struct reaper_conn *rc);

// The answer was sent: the connection waits for its client's next request, for as long as its
// idle timeout allows; only the first bytes of a next request start a deadline again.
void reaper_request_done(struct reaper_conn *rc);

#endif

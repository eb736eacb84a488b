// SPDX-License-Identifier: Apache-2.0
// The body budget: bytes of admission bodies held at once stay within --body-memory; a request
// that does not fit waits, its connection suspended, in arrival order, until room frees or its
// wait ends.
#ifndef TABLEGUARD_BUDGET_H
#define TABLEGUARD_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <microhttpd.h>

struct budget;

// One request's place in the budget. Zero-initialise it; the request owns it, and its members
// are read and written only by this module, under the budget's lock.
struct budget_ticket {
    size_t want;                 // bytes asked for
    size_t reserved;             // bytes held
    struct MHD_Connection *conn; // while waiting
    struct budget_ticket *next;  // the next waiting request
    struct timespec until;       // CLOCK_MONOTONIC: the wait ends then (0: never)
    bool waiting;
    bool expired; // resumed without room: its wait ended first
};

enum budget_grant {
    BUDGET_NOW,     // the body may be read now
    BUDGET_WAITING, // queued; the connection is suspended and resumed when there is room
    BUDGET_NO_ROOM, // may not wait and does not fit: refuse the request
};

// A budget of `limit` bytes. The caller frees it with budget_free.
struct budget *budget_new(size_t limit);

// Frees b; budget_free(NULL) is a no-op. Stop it (budget_stop) before.
void budget_free(struct budget *b);

// Reserves `want` bytes for t, or, when may_wait, queues t and suspends c. A request without a
// Content-Length may not wait: after a resume libmicrohttpd calls the handler with no data, and
// without a length that call cannot be told from the end of the body. `until` (CLOCK_MONOTONIC,
// or NULL: no end) bounds the wait: then t leaves the queue holding nothing, c is resumed and
// budget_expired says so.
enum budget_grant budget_reserve(struct budget *b, struct MHD_Connection *c,
                                 struct budget_ticket *t, size_t want, bool may_wait,
                                 const struct timespec *until);

// True when t's wait ended before there was room for it: it holds nothing.
bool budget_expired(struct budget *b, const struct budget_ticket *t);

// Gives back what t holds (taking it out of the queue if it still waits) and resumes the waiting
// requests that now fit.
void budget_release(struct budget *b, struct budget_ticket *t);

// Stopping: every waiting request is resumed and nobody waits any more. libmicrohttpd must not
// be stopped with suspended connections.
void budget_stop(struct budget *b);

// Bytes held and requests waiting, for the metrics.
void budget_gauges(struct budget *b, size_t *held, size_t *waiting);

#endif

// SPDX-License-Identifier: Apache-2.0
// Prometheus metrics (text format 0.0.4): lock-free counters the request path bumps, rendered
// on demand with the gauges read from their owners (audit log, certificate, policy).
#ifndef TABLEGUARD_METRICS_H
#define TABLEGUARD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "server/admit.h"
#include "server/review.h"

enum metrics_reject {
    METRICS_REJECT_BODY_TOO_LARGE,
    METRICS_REJECT_BAD_REQUEST,
    METRICS_REJECT_METHOD,
    METRICS_REJECT_NOT_FOUND,
    METRICS_REJECT_CLIENT_CERT,
    METRICS_REJECT_AUDIT,
    METRICS_REJECT_BODY_MEMORY,
    METRICS_REJECT_TIMEOUT,
    METRICS_REJECT_COUNT
};

struct metrics;

// What the render reads from the other modules at scrape time.
struct metrics_gauges {
    uint64_t audit_records, audit_errors;
    time_t cert_not_after;                          // 0: unknown
    unsigned long tls_reload_ok, tls_reload_failed; // certificate rotations taken and refused
    size_t policy_rules;
    size_t body_bytes, body_memory; // the body budget: held and allowed
    size_t waiting;                 // requests waiting for room in it
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

// One answered admission request and the seconds it took.
void metrics_observe(struct metrics *m, enum admit_webhook webhook, enum review_operation operation,
                     enum admit_decision decision, double seconds);
void metrics_in_flight(struct metrics *m, int delta);
void metrics_rejected(struct metrics *m, enum metrics_reject reason);
// A request for a kind the policy guards neither as an Application nor as a spec.resources row,
// answered untouched.
void metrics_unguarded(struct metrics *m, enum admit_webhook webhook);
// A request whose body could not be held under --body-memory in time, read through and answered
// from its first bytes (server/unheld.h) with `decision`.
void metrics_not_held(struct metrics *m, enum admit_webhook webhook, enum admit_decision decision);
// A policy reload (file change, poll or SIGHUP): ok or failed; a success also records its time.
void metrics_policy_reload(struct metrics *m, int ok, time_t when);
// The policy's first load at startup: records its time, counts no reload.
void metrics_policy_loaded(struct metrics *m, time_t when);

// An exceptions file (re)load: ok or failed.
void metrics_exceptions_reload(struct metrics *m, int ok);
// One use of the named exception: a request whose violation it waived. Names are counted apart
// up to METRICS_EXCEPTIONS_MAX distinct ones (a file holds few, and counters outlive reloads);
// beyond that they share the series exception="_other".
void metrics_exception_used(struct metrics *m, const char *name);
#define METRICS_EXCEPTIONS_MAX 64

// Renders the exposition text; the caller frees it. *len gets its length.
char *metrics_render(struct metrics *m, const struct metrics_gauges *g, size_t *len);

#endif

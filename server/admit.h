// SPDX-License-Identifier: Apache-2.0
// One admission request from body to answer: decode the review, evaluate it against a policy,
// encode the response, and build the audit record. Shared by the server, the golden-case runner,
// the fuzzers and the benchmarks; it does no I/O.
#ifndef TABLEGUARD_ADMIT_H
#define TABLEGUARD_ADMIT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy/eval.h"
#include "policy/policy.h"
#include "server/review.h"
#include "util/jsonw.h"

enum admit_webhook { ADMIT_MUTATE, ADMIT_VALIDATE, ADMIT_WEBHOOK_COUNT };

// What became of a request; metrics and audit carry it as this index.
enum admit_decision {
    ADMIT_ALLOW,
    ADMIT_PATCH, // allowed with a patch
    ADMIT_DENY,
    ADMIT_INVALID, // the body is not a review: HTTP 400
    ADMIT_ERROR,   // the server could not answer (the audit log cannot be written)
    ADMIT_DECISION_COUNT
};

struct admit_result {
    int status; // HTTP status: 200, or 400 for a body that is not a review
    char *body; // the response body (JSON), owned
    size_t body_len;
    // The audit record for a 200 as one JSON object's text (server/record.h); record.buf is
    // NULL for a 400 or when no record was asked for. Owned.
    struct jsonw record;
    size_t record_code_at;           // where the record's code is, for admit_fail
    enum admit_decision decision;    // ADMIT_ALLOW, _PATCH, _DENY or _INVALID
    enum review_operation operation; // the request's, or REVIEW_UNKNOWN
    bool unguarded; // a write or DELETE of a kind the policy does not guard: allowed untouched
    // The decoded request and the evaluation, kept until admit_result_free.
    struct review_request req;
    struct eval_result ev;
};

// "mutate" or "validate" (static).
const char *admit_webhook_name(enum admit_webhook w);

// "allow", "patch", "deny", "invalid" or "error" (static).
const char *admit_decision_name(enum admit_decision d);

// Answers one request. Always fills `res` (free it with admit_result_free).
// With `record` false no audit record is built (res->record.buf stays NULL): a server without
// an audit log does no work for one.
void admit_handle(const struct policy *p, enum admit_webhook w, const char *body, size_t len,
                  bool record, struct admit_result *res);

// The same, with exceptions (may be NULL) judged at `now` (Unix seconds).
void admit_handle_with(const struct policy *p, const struct exceptions *x, long long now,
                       enum admit_webhook w, const char *body, size_t len, bool record,
                       struct admit_result *res);

// What the answer to a review whose body could not be held (server/unheld.h) says of it.
struct admit_unheld {
    size_t bytes;    // the body's length
    const char *why; // why it was not held, e.g. "--body-memory (N bytes) was in use"
};

// Answers from a stand-in review (unheld_review) for a body that could not be held: the object
// cannot be judged, so it is unreadable, as an escaped NUL makes a review: denied with
// u->why for objects the policy guards, allowed with a warning saying so otherwise. The record
// gets "notHeld" (bytes, reason).
void admit_handle_unheld(const struct policy *p, const struct exceptions *x, long long now,
                         enum admit_webhook w, const char *stand_in, size_t len,
                         const struct admit_unheld *u, bool record, struct admit_result *res);

// Replaces res's answer with an HTTP error of the given status and message; the record, if any,
// is kept and marked with the error so the audit log says what the client received.
void admit_fail(struct admit_result *res, int status, const char *message);

void admit_result_free(struct admit_result *res);

#endif

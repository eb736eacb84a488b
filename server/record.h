// SPDX-License-Identifier: Apache-2.0
// The audit record of one admission decision, written as JSON text (docs/audit.md, schema 2).
#ifndef TABLEGUARD_RECORD_H
#define TABLEGUARD_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/eval.h"
#include "policy/policy.h"
#include "server/review.h"
#include "util/jsonw.h"

// What a decision record says. Every pointer is borrowed for the call only: the text copies
// what it needs.
struct record_decision {
    const char *webhook;  // "mutate" or "validate"
    const char *decision; // "allow", "patch", "deny"
    int code;             // the HTTP status of the answer inside the review: 200 or 403
    const struct review_request *req;
    const struct eval_input *in; // what was evaluated (an excluded request is evaluated again)
    const struct eval_result *ev;
    const char *patch_json; // the patch as sent (JSON text), NULL: no operations
    // A review answered from the first bytes of a body that could not be held
    // (server/unheld.h): its length and why; NULL: the body was held.
    size_t not_held_bytes;
    const char *not_held_reason;
};

// Appends the record's members as one JSON object, `{"schema":2,...,"policy":{...}}`, in the
// order docs/audit.md lists them, byte for byte as printing the same members with cJSON would.
// The audit writer adds the chain members around it. Sets *code_at to the offset of the code's
// digits in w, for record_mark_error.
void record_write(struct jsonw *w, const struct policy *p, const struct record_decision *d,
                  size_t *code_at);

// Marks a record whose answer was replaced by an HTTP error: its code becomes status and an
// "error" member with message is added last. code_at is what record_write returned.
void record_mark_error(struct jsonw *w, size_t code_at, int status, const char *message);

#endif

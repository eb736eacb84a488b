// SPDX-License-Identifier: Apache-2.0
// The API server, simulated offline for `tableguard check` and `tableguard test`: one manifest
// runs through the mutating webhook, its patch is applied, and the result runs through the
// validating webhook, with the same admit_handle the server calls.
#ifndef TABLEGUARD_SIMULATE_H
#define TABLEGUARD_SIMULATE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "policy/exceptions.h"
#include "policy/policy.h"

// The request around a manifest. Every member is borrowed.
struct simulate_request {
    const char *operation; // CREATE, UPDATE or DELETE
    const char *namespace; // NULL: the manifest's, else "default"
    const char *user;
    cJSON *groups;                       // array of strings, borrowed
    const cJSON *old;                    // UPDATE: the object before it, NULL: the manifest itself
    const struct exceptions *exceptions; // NULL: none
    long long now;                       // Unix seconds the exceptions are judged at
};

// What the simulated API server made of one manifest. Owned by whoever filled it.
struct simulate_outcome {
    bool allowed;
    cJSON *patch;    // the decoded JSON Patch operations (an array, possibly empty)
    cJSON *mutated;  // the manifest after the patch
    cJSON *rules;    // the validating record's rules: {name, action, component, table, message}
    cJSON *warnings; // strings, from both webhooks
    char *message;   // the denial, or NULL
    char *skipped;   // why the policy passed the object over, or NULL
    char *error;     // the webhook failed (an answer the API server would refuse), or NULL
};

// Frees what an outcome holds and zeroes it.
void simulate_outcome_free(struct simulate_outcome *o);

// The namespace the request names: the option, else the manifest's, else "default".
const char *simulate_namespace(const cJSON *manifest, const struct simulate_request *o);

// Runs the mutating webhook, applies its patch, then runs the validating webhook on the result.
// A DELETE sends the manifest as oldObject (object null) to the validating webhook only, as the
// API server does when only that webhook registers DELETE. Fills *o (the caller frees it with
// simulate_outcome_free, also on failure). Returns 0 when both answered (o->allowed says the
// decision), -1 with o->error otherwise.
int simulate_run(const struct policy *p, const cJSON *manifest, const struct simulate_request *ro,
                 unsigned seq, struct simulate_outcome *o);

// Loads a policy file, printing its diagnostics on stderr. Returns NULL when it does not load.
struct policy *simulate_policy_load(const char *path);

// Loads an exceptions file likewise. Returns NULL when it does not load.
struct exceptions *simulate_exceptions_load(const char *path);

// Whether op is an operation the offline commands simulate: CREATE, UPDATE or DELETE.
bool simulate_operation_valid(const char *op);

#endif

// SPDX-License-Identifier: Apache-2.0
// What a policy (and its exceptions) covers in a set of real manifests: the checks behind
// `tableguard policy lint --against`, which catch an edit that loads but silently protects less.
// Pure: manifests come in as parsed cJSON trees, findings go out as warning lines.
#ifndef TABLEGUARD_COVERAGE_H
#define TABLEGUARD_COVERAGE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "policy/diag.h"
#include "policy/exceptions.h"
#include "policy/policy.h"

// One manifest document: where it came from ("apps/shop.yaml[2]") and its tree (borrowed).
struct coverage_manifest {
    const char *source;
    const cJSON *object;
};

// Adds to `warnings`, as "FILE: warning: ..." (FILE is policy_file for what the policy says, the
// manifest's source for what a manifest holds):
// - each rule, profile and exception (x may be NULL) that matches no table of the Applications;
// - each component whose type is not in components.types but whose properties hold the key
//   tableNameFrom ends with (a table tableguard never sees);
// - each covered component where a step of tableNameFrom is absent but a key differing only in
//   case is there (the table name then falls back to the component name).
// Returns the number of warnings added.
size_t coverage_check(const struct policy_spec *s, const char *policy_file,
                      const struct exceptions *x, const struct coverage_manifest *m, size_t n,
                      struct diag *warnings);

#endif

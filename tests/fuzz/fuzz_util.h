// SPDX-License-Identifier: Apache-2.0
// What the libFuzzer targets share: an invariant check that aborts (a finding) and a policy
// loaded once from a static buffer.
#ifndef TABLEGUARD_FUZZ_UTIL_H
#define TABLEGUARD_FUZZ_UTIL_H

#include <stdlib.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void
check(int cond)
{
    if (!cond)
        abort();
}

// Loads `yaml` on the first call and returns the same policy ever after (it lives until exit).
static inline struct policy *
policy_once(const char *yaml, size_t len)
{
    static struct policy *p;
    if (p == NULL) {
        struct diag d = {0};
        p = policy_load_buffer(yaml, len, "fuzz.yaml", &d);
        diag_free(&d);
        check(p != NULL);
    }
    return p;
}

#endif

// SPDX-License-Identifier: Apache-2.0
// The smallest policy, every default filled in, for unit tests of the modules that read one.
// Include after <cmocka.h>.
#ifndef TABLEGUARD_TEST_MINIMAL_POLICY_H
#define TABLEGUARD_TEST_MINIMAL_POLICY_H

#include <string.h>

#include "policy/policy.h"

static struct policy *
load(void)
{
    static const char yaml[] = "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\n"
                               "metadata: {name: t}\nspec: {}\n";
    struct diag d = {0};
    struct policy *p = policy_load_buffer(yaml, strlen(yaml), "t.yaml", &d);
    assert_non_null(p);
    diag_free(&d);
    return p;
}

#endif

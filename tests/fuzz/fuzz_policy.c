// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the policy loader: any input either loads with no diagnostic, or fails
// with at least one "fuzz.yaml:..." diagnostic; a loaded policy's normalised print loads again
// and prints the same.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "tests/fuzz/fuzz_util.h"

// The normalised print without its digest comment, which names the bytes it came from.
static char *
print_without_digest(const struct policy *p, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    check(f != NULL);
    policy_print(p, f);
    fclose(f);
    // At a line's start: a policy's name may hold the same text.
    char *line = strstr(buf, "\n  # sha256: ");
    check(line != NULL);
    line++;
    char *end = strchr(line, '\n');
    memmove(line, end + 1, strlen(end + 1) + 1);
    *len = strlen(buf);
    return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct diag d = {0};
    struct policy *p = policy_load_buffer((const char *)data, size, "fuzz.yaml", &d);
    check((p == NULL) == (d.count > 0));
    for (size_t i = 0; i < d.count; i++)
        check(strcmp(d.items[i].file, "fuzz.yaml") == 0 &&
              strchr(d.items[i].message, '\n') == NULL);
    diag_free(&d);
    if (p == NULL)
        return 0;
    check(policy_spec(p)->name != NULL && strlen(policy_sha256(p)) == 64);
    size_t len1, len2;
    char *first = print_without_digest(p, &len1);
    struct policy *again = policy_load_buffer(first, len1, "fuzz.yaml", &d);
    check(again != NULL);
    char *second = print_without_digest(again, &len2);
    check(len1 == len2 && memcmp(first, second, len1) == 0);
    free(first);
    free(second);
    policy_unref(again);
    policy_unref(p);
    return 0;
}

// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the exceptions loader: any input either loads with no diagnostic, or fails
// with at least one one-line "fuzz.yaml:..." diagnostic; a loaded file's exceptions answer the
// waiver lookup and lint against a fixed policy without fault, each expiry is a time its own text
// parses to, and no exception waives anything at or after its expiry.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/exceptions.h"
#include "tests/fuzz/fuzz_util.h"

static const char POLICY[] = "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\n"
                             "metadata: {name: f}\nspec:\n  rules:\n"
                             "    - {name: r, tables: ['*-prod'], namespaces: ['s*'], require: "
                             "{deletionProtection: true}}\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct diag d = {0};
    struct exceptions *x = exceptions_load_buffer((const char *)data, size, "fuzz.yaml", &d);
    check((x == NULL) == (d.count > 0));
    for (size_t i = 0; i < d.count; i++)
        check(strcmp(d.items[i].file, "fuzz.yaml") == 0 &&
              strchr(d.items[i].message, '\n') == NULL);
    diag_free(&d);
    if (x == NULL)
        return 0;
    check(exceptions_name(x) != NULL && strlen(exceptions_sha256(x)) == 64);
    check(exceptions_count(x) <= EXCEPTIONS_MAX);
    for (size_t i = 0; i < exceptions_count(x); i++) {
        const struct exception *e = exceptions_at(x, i);
        long long t;
        char err[120];
        check(exceptions_parse_time(e->expires_text, &t, err, sizeof err) == 0 && t == e->expires);
        check(e->rule_count > 0 && e->tables.count > 0);
        const char *table = e->tables.items[0];
        check(exceptions_waiver(x, e->rules[0], table, "a", "s", e->expires, 0) != e);
        (void)exceptions_waiver(x, e->rules[0], table, "a", "s", e->expires - 1, 30);
        (void)exceptions_globs_overlap(table, "*-prod");
    }
    struct policy *p = policy_once(POLICY, sizeof POLICY - 1);
    struct diag errors = {0}, warnings = {0};
    exceptions_lint(x, policy_spec(p), 1796428800LL, &errors, &warnings);
    for (size_t i = 0; i < errors.count; i++)
        check(strcmp(errors.items[i].file, "fuzz.yaml") == 0);
    diag_free(&errors);
    diag_free(&warnings);
    exceptions_unref(x);
    return 0;
}

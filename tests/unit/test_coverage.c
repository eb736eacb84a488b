// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy/coverage: what `policy lint --against` reports about real manifests.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/coverage.h"

static const char POLICY[] =
    "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\nmetadata: {name: t}\nspec:\n"
    "  profiles:\n"
    "    - {name: production, tables: ['*-prod']}\n"
    "    - {name: qa, tables: ['*-qa']}\n"
    "  rules:\n"
    "    - {name: prod-dp, tables: ['*-prod'], require: {deletionProtection: true}}\n"
    "    - {name: eu-only, tables: ['*'], namespaces: [eu-*], require: {deletionProtection: "
    "true}}\n";

static const char EXCEPTIONS[] =
    "apiVersion: tableguard.io/v1\nkind: ProtectionExceptions\nmetadata: {name: x}\nspec:\n"
    "  exceptions:\n"
    "    - {name: used, ticket: T, approvedBy: a, expires: '2026-12-05T00:00:00Z', tables: "
    "[orders-prod], applications: [shop], rules: [prod-dp]}\n"
    "    - {name: other-app, ticket: T, approvedBy: a, expires: '2026-12-05T00:00:00Z', tables: "
    "[orders-prod], applications: [billing], rules: [prod-dp]}\n";

static const char APP[] =
    "{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\",\"metadata\":{\"name\":"
    "\"shop\",\"namespace\":\"shop\"},\"spec\":{\"components\":["
    "{\"name\":\"orders\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":"
    "\"orders-prod\"}},"
    "{\"name\":\"users-prod\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tablename\":"
    "\"users-x\"}},"
    "{\"name\":\"legacy\",\"type\":\"aws-dynamodb\",\"properties\":{\"tableName\":\"legacy-prod\"}}"
    ","
    "{\"name\":\"web\",\"type\":\"webservice\",\"properties\":{\"image\":\"nginx\"}}]}}";

static void
reports_what_matches_nothing_and_what_is_missed(void **state)
{
    (void)state;
    struct diag d = {0};
    struct policy *p = policy_load_buffer(POLICY, strlen(POLICY), "p.yaml", &d);
    struct exceptions *x = exceptions_load_buffer(EXCEPTIONS, strlen(EXCEPTIONS), "x.yaml", &d);
    assert_non_null(p);
    assert_non_null(x);
    cJSON *app = cJSON_Parse(APP), *other = cJSON_Parse("{\"kind\":\"ConfigMap\"}");
    struct coverage_manifest m[] = {{"apps.yaml[1]", app}, {"apps.yaml[2]", other}};
    struct diag w = {0};
    size_t n = coverage_check(policy_spec(p), "p.yaml", x, m, 2, &w);
    static const char *const want[] = {
        "apps.yaml[1]: warning: component \"users-prod\": tableNameFrom \"properties.tableName\" "
        "has no \"tableName\" here but \"tablename\" exists",
        "apps.yaml[1]: warning: component \"legacy\" of type \"aws-dynamodb\" holds a tableName "
        "but its type is not in components.types",
        "p.yaml: warning: rule \"eu-only\" matches no table in the manifests",
        "p.yaml: warning: profile \"qa\" matches no table in the manifests",
        "x.yaml:7: warning: exception \"other-app\" matches no table in the manifests",
    };
    assert_int_equal(n, sizeof want / sizeof *want);
    assert_int_equal(w.count, n);
    for (size_t i = 0; i < n; i++) {
        char *line = diag_format(&w.items[i]);
        if (strstr(line, want[i]) == NULL)
            fail_msg("line %zu: \"%s\" lacks \"%s\"", i, line, want[i]);
        free(line);
    }
    diag_free(&w);
    // Without exceptions, and against nothing at all: every rule and profile is unused.
    n = coverage_check(policy_spec(p), "p.yaml", NULL, m + 1, 1, &w);
    assert_int_equal(n, 4);
    diag_free(&w);
    cJSON_Delete(app);
    cJSON_Delete(other);
    exceptions_unref(x);
    policy_unref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reports_what_matches_nothing_and_what_is_missed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

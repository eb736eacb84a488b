// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy/eval: trait injection and the rules, on the pure core.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/eval.h"
#include "policy/patch.h"

static const char POLICY[] = "apiVersion: tableguard.io/v1\n"
                             "kind: ProtectionPolicy\n"
                             "metadata: {name: t}\n"
                             "spec:\n"
                             "  exclude: {namespaces: [kube-*], users: [admin], groups: [ops]}\n"
                             "  rules:\n"
                             "    - name: dp\n"
                             "      tables: ['*-prod']\n"
                             "      require: {deletionProtection: true}\n"
                             "    - name: pitr\n"
                             "      tables: ['*-prod']\n"
                             "      require: {pointInTimeRecovery: true}\n"
                             "      action: warn\n"
                             "    - name: staging\n"
                             "      tables: ['*-staging']\n"
                             "      require: {deletionProtection: true}\n"
                             "      action: audit\n";

static struct policy *
load(void)
{
    struct diag d = {0};
    struct policy *p = policy_load_buffer(POLICY, strlen(POLICY), "t.yaml", &d);
    assert_non_null(p);
    diag_free(&d);
    return p;
}

// An Application with the given components (a JSON array text).
static cJSON *
app(const char *components)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\","
             "\"metadata\":{\"name\":\"shop\",\"namespace\":\"ns\"},\"spec\":{\"components\":%s}}",
             components);
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    return j;
}

static struct eval_input
input(const cJSON *obj)
{
    return (struct eval_input){.object = obj, .namespace = "ns", .username = "alice"};
}

static char *
patch_text(const struct eval_result *r)
{
    return r->patch ? cJSON_PrintUnformatted(r->patch) : strdup("null");
}

static void
injects_appends_fills_and_never_overrides(void **state)
{
    (void)state;
    struct policy *p = load();
    cJSON *a = app("[{\"name\":\"a\",\"type\":\"aws-dynamodb-kro\"},"
                   "{\"name\":\"b\",\"type\":\"aws-dynamodb-kro\",\"traits\":[{\"type\":\"x\"}]},"
                   "{\"name\":\"c\",\"type\":\"aws-dynamodb-kro\",\"traits\":[{\"type\":"
                   "\"dynamodb-protection-kro\",\"properties\":{\"deletionProtection\":false}}]},"
                   "{\"name\":\"d\",\"type\":\"webservice\"}]");
    struct eval_input in = input(a);
    struct eval_result r;
    eval_mutate(p, &in, &r);
    char *t = patch_text(&r);
    assert_string_equal(
        t, "[{\"op\":\"add\",\"path\":\"/spec/components/0/traits\",\"value\":[{\"type\":"
           "\"dynamodb-protection-kro\",\"properties\":{\"deletionProtection\":true,"
           "\"pointInTimeRecovery\":true}}]},"
           "{\"op\":\"add\",\"path\":\"/spec/components/1/traits/-\",\"value\":{\"type\":"
           "\"dynamodb-protection-kro\",\"properties\":{\"deletionProtection\":true,"
           "\"pointInTimeRecovery\":true}}},"
           "{\"op\":\"add\",\"path\":\"/spec/components/2/traits/0/properties/"
           "pointInTimeRecovery\",\"value\":true}]");
    free(t);
    // Apply and run again: nothing more to add.
    char err[128];
    assert_int_equal(patch_apply(a, r.patch, err, sizeof err), 0);
    eval_result_free(&r);
    eval_mutate(p, &in, &r);
    assert_null(r.patch);
    assert_int_equal(r.skip, EVAL_EVALUATED);
    eval_result_free(&r);
    cJSON_Delete(a);
    policy_unref(p);
}

static void
skips_deleting_excluded_and_other_kinds(void **state)
{
    (void)state;
    struct policy *p = load();
    cJSON *a = app("[{\"name\":\"a-prod\",\"type\":\"aws-dynamodb-kro\"}]");
    struct eval_result r;
    struct eval_input in = input(a);
    in.namespace = "kube-system";
    eval_mutate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_EXCLUDED);
    assert_null(r.patch);
    eval_result_free(&r);
    in = input(a);
    in.username = "admin";
    eval_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_EXCLUDED);
    assert_false(r.denied);
    eval_result_free(&r);
    const char *groups[] = {"devs", "ops"};
    in = input(a);
    in.groups = groups;
    in.group_count = 2;
    eval_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_EXCLUDED);
    eval_result_free(&r);

    cJSON_AddStringToObject(cJSON_GetObjectItem(a, "metadata"), "deletionTimestamp", "now");
    in = input(a);
    eval_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_DELETING);
    assert_false(r.denied);
    eval_result_free(&r);
    cJSON_Delete(a);

    cJSON *cm = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}");
    in = input(cm);
    eval_mutate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_NOT_APPLICATION);
    eval_result_free(&r);
    cJSON_Delete(cm);
    policy_unref(p);
}

// Validates one component (JSON object text) and returns the result.
static void
validate_one(struct policy *p, const char *component, struct eval_result *r)
{
    char list[2048];
    snprintf(list, sizeof list, "[%s]", component);
    cJSON *a = app(list);
    struct eval_input in = input(a);
    eval_validate(p, &in, r);
    cJSON_Delete(a);
}

static void
effective_settings_as_kubevela_renders_them(void **state)
{
    (void)state;
    struct policy *p = load();
    struct eval_result r;
    // Trait absent: unprotected, denied, and PITR warned.
    validate_one(p,
                 "{\"name\":\"c\",\"type\":\"aws-dynamodb-kro\",\"properties\":"
                 "{\"tableName\":\"orders-prod\"}}",
                 &r);
    assert_true(r.denied);
    assert_int_equal(r.warning_count, 1);
    assert_non_null(strstr(r.deny_message, "orders-prod"));
    assert_non_null(strstr(r.deny_message, "add the trait"));
    eval_result_free(&r);
    // Trait present without properties: both default to true.
    validate_one(p,
                 "{\"name\":\"orders-prod\",\"type\":\"aws-dynamodb-kro\",\"traits\":"
                 "[{\"type\":\"dynamodb-protection-kro\"}]}",
                 &r);
    assert_false(r.denied);
    assert_int_equal(r.finding_count, 0);
    eval_result_free(&r);
    // Explicit false, upper-case name.
    validate_one(p,
                 "{\"name\":\"c\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":"
                 "\"ORDERS-PROD\"},\"traits\":[{\"type\":\"dynamodb-protection-kro\","
                 "\"properties\":{\"deletionProtection\":false}}]}",
                 &r);
    assert_true(r.denied);
    assert_string_equal(r.findings[0].rule->name, "dp");
    assert_string_equal(r.findings[0].table, "ORDERS-PROD");
    assert_string_equal(r.findings[0].pattern, "*-prod");
    eval_result_free(&r);
    // Non-boolean values are errors, each reported as such.
    const char *values[] = {"\"false\"", "0", "null", "[]"};
    for (size_t i = 0; i < 4; i++) {
        char comp[512];
        snprintf(comp, sizeof comp,
                 "{\"name\":\"x-prod\",\"type\":\"aws-dynamodb-kro\",\"traits\":[{\"type\":"
                 "\"dynamodb-protection-kro\",\"properties\":{\"deletionProtection\":%s}}]}",
                 values[i]);
        validate_one(p, comp, &r);
        assert_true(r.denied);
        assert_non_null(strstr(r.deny_message, "not a boolean"));
        eval_result_free(&r);
    }
    // Two protection traits: an error.
    validate_one(p,
                 "{\"name\":\"x-prod\",\"type\":\"aws-dynamodb-kro\",\"traits\":["
                 "{\"type\":\"dynamodb-protection-kro\"},{\"type\":\"dynamodb-protection-kro\"}]}",
                 &r);
    assert_true(r.denied);
    assert_non_null(strstr(r.deny_message, "2 dynamodb-protection-kro traits"));
    eval_result_free(&r);
    // Not production: nothing.
    validate_one(p, "{\"name\":\"x-dev\",\"type\":\"aws-dynamodb-kro\"}", &r);
    assert_false(r.denied);
    assert_int_equal(r.finding_count, 0);
    eval_result_free(&r);
    // An audit rule is recorded, never denies or warns.
    validate_one(p, "{\"name\":\"x-staging\",\"type\":\"aws-dynamodb-kro\"}", &r);
    assert_false(r.denied);
    assert_int_equal(r.warning_count, 0);
    assert_int_equal(r.finding_count, 1);
    assert_int_equal(r.findings[0].rule->action, POLICY_AUDIT);
    eval_result_free(&r);
    policy_unref(p);
}

static void
warnings_are_short_and_single_line(void **state)
{
    (void)state;
    struct policy *p = load();
    struct eval_result r;
    char comp[1024], name[600];
    memset(name, 'x', 500);
    strcpy(name + 500, "\\n-prod");
    snprintf(comp, sizeof comp,
             "{\"name\":\"%s\",\"type\":\"aws-dynamodb-kro\",\"traits\":[{\"type\":"
             "\"dynamodb-protection-kro\",\"properties\":{\"pointInTimeRecovery\":false}}]}",
             name);
    validate_one(p, comp, &r);
    assert_false(r.denied);
    assert_int_equal(r.warning_count, 1);
    assert_true(strlen(r.warnings[0]) <= EVAL_WARNING_MAX);
    for (const char *c = r.warnings[0]; *c; c++)
        assert_true((unsigned char)*c >= 0x20);
    eval_result_free(&r);
    policy_unref(p);
}

static void
denials_are_bounded(void **state)
{
    (void)state;
    struct policy *p = load();
    // Fifteen violating tables: ten are named, the rest counted.
    char list[8192] = "[";
    for (int i = 0; i < 15; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list),
                 "%s{\"name\":\"t%d-prod\",\"type\":\"aws-dynamodb-kro\"}", i ? "," : "", i);
    strcat(list, "]");
    cJSON *a = app(list);
    struct eval_input in = input(a);
    struct eval_result r;
    eval_validate(p, &in, &r);
    assert_true(r.denied);
    assert_non_null(strstr(r.deny_message, "15 violations"));
    assert_non_null(strstr(r.deny_message, "[10] "));
    assert_null(strstr(r.deny_message, "[11] "));
    assert_non_null(strstr(r.deny_message, "and 5 more"));
    eval_result_free(&r);
    cJSON_Delete(a);
    // A huge table name does not make a huge message.
    size_t big = 100000;
    char *comp = malloc(big + 200);
    strcpy(comp, "{\"name\":\"");
    memset(comp + strlen(comp), 'x', big);
    strcpy(comp + 9 + big, "-prod\",\"type\":\"aws-dynamodb-kro\"}");
    cJSON *c = cJSON_Parse(comp);
    assert_non_null(c);
    cJSON *b = app("[]");
    cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "spec"), "components"), c);
    in = input(b);
    eval_validate(p, &in, &r);
    assert_true(r.denied);
    assert_true(strlen(r.deny_message) <= EVAL_DENY_MAX);
    assert_non_null(strstr(r.deny_message, "..."));
    eval_result_free(&r);
    cJSON_Delete(b);
    free(comp);
    policy_unref(p);
}

// The row of `table` in r->tables, failing the test when there is none.
static const struct eval_table *
row_of(const struct eval_result *r, const char *table)
{
    for (size_t i = 0; i < r->table_count; i++)
        if (r->tables[i].table != NULL && strcmp(r->tables[i].table, table) == 0)
            return &r->tables[i];
    fail_msg("no row for table %s", table);
    return NULL;
}

static void
tables_list_every_component_that_holds_one(void **state)
{
    (void)state;
    struct policy *p = load();
    cJSON *a =
        app("[{\"name\":\"a\",\"type\":\"aws-dynamodb-kro\",\"properties\":{"
            "\"tableName\":\"orders-prod\"}},"
            "{\"name\":\"b-dev\",\"type\":\"aws-dynamodb-kro\",\"traits\":[{\"type\":"
            "\"dynamodb-protection-kro\",\"properties\":{\"deletionProtection\":false}}]},"
            "{\"name\":\"web\",\"type\":\"webservice\"},"
            "{\"name\":\"c-prod\",\"type\":\"aws-dynamodb-kro\",\"traits\":[{\"type\":"
            "\"dynamodb-protection-kro\",\"properties\":{\"pointInTimeRecovery\":\"no\"}}]}]");
    struct eval_input in = input(a);
    struct eval_result r;
    // Validate: the settings as sent; an absent trait is unprotected, a string is an error.
    eval_validate(p, &in, &r);
    assert_int_equal(r.table_count, 3);
    assert_string_equal(r.tables[0].component, "a");
    assert_string_equal(r.tables[0].table, "orders-prod");
    assert_string_equal(r.tables[1].table, "b-dev");
    assert_string_equal(r.tables[2].table, "c-prod");
    const struct eval_table *t = row_of(&r, "orders-prod");
    assert_int_equal(t->after[POLICY_DELETION_PROTECTION], 0);
    assert_int_equal(t->after[POLICY_PITR], 0);
    t = row_of(&r, "b-dev");
    assert_int_equal(t->after[POLICY_DELETION_PROTECTION], 0);
    assert_int_equal(t->after[POLICY_PITR], 1);
    t = row_of(&r, "c-prod");
    assert_int_equal(t->after[POLICY_DELETION_PROTECTION], 1);
    assert_int_equal(t->after[POLICY_PITR], -2);
    for (size_t i = 0; i < r.table_count; i++) {
        assert_null(r.tables[i].old_table);
        assert_null(r.tables[i].transition);
        assert_null(r.tables[i].profile);
        assert_null(r.tables[i].exception);
        for (int k = 0; k < POLICY_SETTING_COUNT; k++)
            assert_int_equal(r.tables[i].before[k], -1);
    }
    eval_result_free(&r);
    // Mutate: what the object renders once the patch is applied; explicit values stay.
    eval_mutate(p, &in, &r);
    assert_int_equal(r.table_count, 3);
    t = row_of(&r, "orders-prod");
    assert_int_equal(t->after[POLICY_DELETION_PROTECTION], 1);
    assert_int_equal(t->after[POLICY_PITR], 1);
    t = row_of(&r, "b-dev");
    assert_int_equal(t->after[POLICY_DELETION_PROTECTION], 0);
    assert_int_equal(t->after[POLICY_PITR], 1);
    t = row_of(&r, "c-prod");
    assert_int_equal(t->after[POLICY_PITR], -2);
    // The mutated object, validated, renders exactly what mutate reported.
    char err[128];
    assert_int_equal(patch_apply(a, r.patch, err, sizeof err), 0);
    struct eval_result v;
    eval_validate(p, &in, &v);
    assert_int_equal(v.table_count, r.table_count);
    for (size_t i = 0; i < r.table_count; i++)
        assert_memory_equal(v.tables[i].after, r.tables[i].after, sizeof v.tables[i].after);
    eval_result_free(&v);
    eval_result_free(&r);
    cJSON_Delete(a);
    // Skipped objects examine no table.
    cJSON *cm = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"}");
    in = input(cm);
    eval_validate(p, &in, &r);
    assert_int_equal(r.table_count, 0);
    assert_null(r.tables);
    eval_result_free(&r);
    cJSON_Delete(cm);
    // Many components: one row each, in order.
    cJSON *big = app("[]");
    cJSON *comps = cJSON_GetObjectItem(cJSON_GetObjectItem(big, "spec"), "components");
    for (int i = 0; i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", name);
        cJSON_AddStringToObject(c, "type", "aws-dynamodb-kro");
        cJSON_AddItemToArray(comps, c);
    }
    in = input(big);
    eval_validate(p, &in, &r);
    assert_int_equal(r.table_count, 1000);
    assert_string_equal(r.tables[999].table, "t999");
    eval_result_free(&r);
    cJSON_Delete(big);
    policy_unref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(injects_appends_fills_and_never_overrides),
        cmocka_unit_test(skips_deleting_excluded_and_other_kinds),
        cmocka_unit_test(effective_settings_as_kubevela_renders_them),
        cmocka_unit_test(warnings_are_short_and_single_line),
        cmocka_unit_test(denials_are_bounded),
        cmocka_unit_test(tables_list_every_component_that_holds_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

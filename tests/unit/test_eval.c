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
    in.operation = "UPDATE";
    eval_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_DELETING);
    assert_false(r.denied);
    eval_result_free(&r);
    eval_mutate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_DELETING);
    assert_null(r.patch);
    eval_result_free(&r);
    // A CREATE that carries deletionTimestamp is judged: the API server clears the field after
    // the mutating webhooks, so skipping it would store the table without its protection.
    in.operation = "CREATE";
    eval_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_EVALUATED);
    assert_true(r.denied);
    eval_result_free(&r);
    in.operation = NULL; // unknown: judged like a CREATE
    eval_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_EVALUATED);
    assert_true(r.denied);
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

static const char KEEP_POLICY[] = "apiVersion: tableguard.io/v1\n"
                                  "kind: ProtectionPolicy\n"
                                  "metadata: {name: keep}\n"
                                  "spec:\n"
                                  "  rules:\n"
                                  "    - name: dp\n"
                                  "      tables: ['*-prod']\n"
                                  "      require: {deletionProtection: true}\n"
                                  "    - name: kept\n"
                                  "      tables: ['*-prod']\n"
                                  "      forbid: [remove, rename, delete]\n"
                                  "    - name: staging-kept\n"
                                  "      tables: ['*-staging']\n"
                                  "      forbid: [remove]\n"
                                  "      action: warn\n";

#define PROTECTED(name, table)                                                                     \
    "{\"name\":\"" name "\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"" table  \
    "\"},\"traits\":[{\"type\":\"dynamodb-protection-kro\"}]}"

static void
judge(struct policy *p, const char *op, const char *old_comps, const char *new_comps,
      struct eval_result *r)
{
    cJSON *old = old_comps ? app(old_comps) : NULL;
    cJSON *now = new_comps ? app(new_comps) : NULL;
    struct eval_input in = input(now);
    in.old_object = old;
    in.operation = op;
    eval_validate(p, &in, r);
    cJSON_Delete(old);
    cJSON_Delete(now);
}

static void
transitions_are_judged_on_update_and_delete(void **state)
{
    (void)state;
    struct diag d = {0};
    struct policy *p = policy_load_buffer(KEEP_POLICY, strlen(KEEP_POLICY), "k.yaml", &d);
    assert_non_null(p);
    struct eval_result r;
    // Removal of a protected production table: denied, with what happens and the ways through.
    judge(p, "UPDATE", "[" PROTECTED("orders", "orders-prod") "]", "[]", &r);
    assert_int_equal(r.skip, EVAL_EVALUATED);
    assert_true(r.denied);
    assert_int_equal(r.finding_count, 1);
    assert_string_equal(r.findings[0].rule->name, "kept");
    assert_string_equal(r.findings[0].table, "orders-prod");
    assert_non_null(strstr(r.deny_message, "forbids remove"));
    assert_non_null(strstr(r.deny_message, "deleted with its data"));
    assert_non_null(strstr(r.deny_message, "app.oam.dev/orphan-resource"));
    assert_non_null(strstr(r.deny_message, "strategy: never"));
    assert_non_null(strstr(r.deny_message, "approved exception"));
    assert_int_equal(r.table_count, 1);
    assert_null(r.tables[0].table);
    assert_string_equal(r.tables[0].old_table, "orders-prod");
    assert_string_equal(r.tables[0].transition, "remove");
    assert_int_equal(r.tables[0].before[POLICY_DELETION_PROTECTION], 1);
    assert_int_equal(r.tables[0].after[POLICY_DELETION_PROTECTION], -1);
    eval_result_free(&r);
    // Table name change, and a component rename keeping the table: renames.
    judge(p, "UPDATE", "[" PROTECTED("orders", "orders-prod") "]",
          "[" PROTECTED("orders", "orders2-prod") "]", &r);
    assert_true(r.denied);
    assert_non_null(strstr(r.deny_message, "forbids rename"));
    assert_non_null(strstr(r.deny_message, "set the table name back to \"orders-prod\""));
    assert_string_equal(r.tables[0].table, "orders2-prod");
    assert_string_equal(r.tables[0].old_table, "orders-prod");
    assert_string_equal(r.tables[0].transition, "rename");
    eval_result_free(&r);
    judge(p, "UPDATE", "[" PROTECTED("orders", "orders-prod") "]",
          "[" PROTECTED("orders-db", "orders-prod") "]", &r);
    assert_true(r.denied);
    assert_non_null(strstr(r.deny_message, "keep the component name \"orders\""));
    eval_result_free(&r);
    // Rename onto a production name from a non-production one: matched on the new name.
    judge(p, "UPDATE", "[" PROTECTED("orders", "orders-dev") "]",
          "[" PROTECTED("orders", "orders-prod") "]", &r);
    assert_true(r.denied);
    eval_result_free(&r);
    // Nothing changes: allowed, rows carry both sides.
    judge(p, "UPDATE", "[" PROTECTED("orders", "orders-prod") "]",
          "[" PROTECTED("orders", "orders-prod") "]", &r);
    assert_false(r.denied);
    assert_int_equal(r.table_count, 1);
    assert_string_equal(r.tables[0].old_table, "orders-prod");
    assert_null(r.tables[0].transition);
    assert_int_equal(r.tables[0].before[POLICY_PITR], 1);
    assert_int_equal(r.tables[0].after[POLICY_PITR], 1);
    eval_result_free(&r);
    // A warn rule warns; a table no rule covers goes freely.
    judge(p, "UPDATE", "[" PROTECTED("s", "s-staging") "," PROTECTED("d", "d-dev") "]", "[]", &r);
    assert_false(r.denied);
    assert_int_equal(r.warning_count, 1);
    assert_string_equal(r.warnings[0], "table \"s-staging\": remove forbidden (rule staging-kept)");
    assert_int_equal(r.table_count, 2);
    eval_result_free(&r);
    // DELETE of the Application: judged on oldObject; the object is null.
    judge(p, "DELETE", "[" PROTECTED("orders", "orders-prod") "]", NULL, &r);
    assert_int_equal(r.skip, EVAL_EVALUATED);
    assert_true(r.denied);
    assert_non_null(strstr(r.deny_message, "forbids delete"));
    assert_non_null(strstr(r.deny_message, "vela delete --orphan"));
    assert_string_equal(r.tables[0].transition, "delete");
    eval_result_free(&r);
    // The orphan finalizer keeps the tables: no transition.
    cJSON *old = app("[" PROTECTED("orders", "orders-prod") "]");
    cJSON *fin = cJSON_CreateArray();
    cJSON_AddItemToArray(fin, cJSON_CreateString("app.oam.dev/orphan-resource"));
    cJSON_AddItemToObject(cJSON_GetObjectItem(old, "metadata"), "finalizers", fin);
    struct eval_input in = input(NULL);
    in.old_object = old;
    in.operation = "DELETE";
    eval_validate(p, &in, &r);
    assert_false(r.denied);
    assert_null(r.tables[0].transition);
    eval_result_free(&r);
    // Being deleted already, or not an Application: not judged.
    cJSON_AddStringToObject(cJSON_GetObjectItem(old, "metadata"), "deletionTimestamp", "t");
    eval_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_DELETING);
    eval_result_free(&r);
    cJSON_Delete(old);
    in.old_object = NULL;
    eval_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_NOT_APPLICATION);
    eval_result_free(&r);
    // An UPDATE without oldObject is judged on the object alone.
    judge(p, "UPDATE", NULL, "[" PROTECTED("orders", "orders-prod") "]", &r);
    assert_false(r.denied);
    assert_null(r.tables[0].old_table);
    eval_result_free(&r);
    diag_free(&d);
    policy_unref(p);
}

// Flux with force deletes and re-creates an object whose apply fails with "immutable"; no built-in
// message of any rule, on any door, may say it.
static void
no_message_says_immutable(void **state)
{
    (void)state;
    struct diag d = {0};
    struct policy *p = policy_load_buffer(KEEP_POLICY, strlen(KEEP_POLICY), "k.yaml", &d);
    const char *olds[] = {
        "[" PROTECTED("orders", "orders-prod") "," PROTECTED("s", "s-staging") "]"};
    const char *news[] = {
        "[]",
        "[" PROTECTED("orders", "orders2-prod") "]",
        "[" PROTECTED("o2", "orders-prod") "]",
        "[{\"name\":\"orders\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":"
        "\"orders-prod\"},\"traits\":[{\"type\":\"dynamodb-protection-kro\",\"properties\":{"
        "\"deletionProtection\":\"off\"}}]}]",
        "[{\"name\":\"orders\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":"
        "\"orders-prod\"}}]",
        "[{\"name\":\"orders\",\"type\":\"webservice\"}]",
        NULL,
    };
    struct eval_result r;
    for (size_t i = 0; i < sizeof news / sizeof *news; i++) {
        judge(p, news[i] ? "UPDATE" : "DELETE", olds[0], news[i], &r);
        assert_true(r.denied);
        for (size_t k = 0; k < r.finding_count; k++)
            assert_null(strcasestr(r.findings[k].message, "immutable"));
        for (size_t k = 0; k < r.warning_count; k++)
            assert_null(strcasestr(r.warnings[k], "immutable"));
        assert_null(strcasestr(r.deny_message, "immutable"));
        eval_result_free(&r);
    }
    // A name that brings the word in does not carry it out.
    judge(p, "UPDATE", "[" PROTECTED("Immutable", "IMMUTABLE-prod") "]", "[]", &r);
    assert_true(r.denied);
    assert_null(strcasestr(r.deny_message, "immutable"));
    assert_non_null(strstr(r.deny_message, "table \"unchangeable-prod\""));
    eval_result_free(&r);
    judge(p, "UPDATE", "[" PROTECTED("s", "immutable-staging") "]", "[]", &r);
    assert_int_equal(r.warning_count, 1);
    assert_null(strcasestr(r.warnings[0], "immutable"));
    eval_result_free(&r);
    diag_free(&d);
    policy_unref(p);
}

// The one-pass cleaning of messages against the plain definition: control characters become
// spaces, then every "immutable" (any case, left to right) becomes "unchangeable".
static char *
one_line_reference(const char *s)
{
    char *c = strdup(s);
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    char *out = malloc(strlen(c) * 2 + 1), *q = out;
    const char *p = c, *hit;
    while ((hit = strcasestr(p, "immutable")) != NULL) {
        memcpy(q, p, (size_t)(hit - p));
        q += hit - p;
        q = stpcpy(q, "unchangeable");
        p = hit + 9;
    }
    strcpy(q, p);
    free(c);
    return out;
}

static void
one_line_matches_its_definition(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "immutable", "IMMUTABLE",   "ImMuTaBlE", "immutabl", "mm",       "MM",           "m",
        "M",         "i",           "imm",       "mutable",  "a",        "table \"",     "\n",
        "\t",        "\x01",        "\x1f",      "\x7f",     "\xc3\xa9", "\xe2\x82\xac", " ",
        "xxxxxxx",   "immimmutable"};
    size_t n_pieces = sizeof pieces / sizeof *pieces;
    srand(17);
    for (int round = 0; round < 20000; round++) {
        char in[512] = "";
        for (int k = rand() % 24; k > 0; k--)
            strcat(in, pieces[(size_t)rand() % n_pieces]);
        char *want = one_line_reference(in);
        char *got = eval_one_line(strdup(in));
        assert_string_equal(got, want);
        free(got);
        free(want);
    }
}

// One "add" operation under /spec/components/, and the trait with the given settings, as text.
#define ADD(path, value)                                                                           \
    "{\"op\":\"add\",\"path\":\"/spec/components/" path "\",\"value\":" value "}"
#define TRAIT(dp, pitr)                                                                            \
    "{\"type\":\"dynamodb-protection-kro\",\"properties\":{\"deletionProtection\":" dp             \
    ",\"pointInTimeRecovery\":" pitr "}}"

static void
profiles_choose_what_mutate_injects(void **state)
{
    (void)state;
    static const char yaml[] =
        "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\nmetadata: {name: t}\nspec:\n"
        "  profiles:\n"
        "    - {name: production, tables: ['*-prod']}\n"
        "    - {name: staging, tables: ['*-staging'],\n"
        "       defaults: {deletionProtection: true, pointInTimeRecovery: false}}\n"
        "    - {name: development, tables: ['*-dev'], inject: false}\n"
        "    - {name: elsewhere, tables: ['*-qa'], namespaces: [other], inject: false}\n";
    struct diag d = {0};
    struct policy *p = policy_load_buffer(yaml, strlen(yaml), "t.yaml", &d);
    assert_non_null(p);
    cJSON *a = app(
        "[{\"name\":\"a\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"o-prod\"}},"
        "{\"name\":\"b\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"u-staging\"}"
        "},"
        "{\"name\":\"c\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"s-dev\"}},"
        "{\"name\":\"d\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"x-qa\"}},"
        "{\"name\":\"e-staging\",\"type\":\"aws-dynamodb-kro\",\"traits\":[{\"type\":"
        "\"dynamodb-protection-kro\",\"properties\":{}}]}]");
    struct eval_input in = input(a);
    struct eval_result r;
    eval_mutate(p, &in, &r);
    char *t = patch_text(&r);
    // prod: trait.defaults; staging: its own values, also when filling an existing trait (the
    // table name falls back to the component name); dev: nothing; qa: its profile is bound to
    // another namespace, so the table gets trait.defaults.
    assert_string_equal(t, "[" ADD("0/traits", "[" TRAIT("true", "true") "]") ","   //
                        ADD("1/traits", "[" TRAIT("true", "false") "]") ","         //
                        ADD("3/traits", "[" TRAIT("true", "true") "]") ","          //
                        ADD("4/traits/0/properties/deletionProtection", "true") "," //
                        ADD("4/traits/0/properties/pointInTimeRecovery", "false") "]");
    free(t);
    // Each row names its table's profile and what it renders once the patch is applied.
    assert_string_equal(row_of(&r, "o-prod")->profile, "production");
    assert_string_equal(row_of(&r, "u-staging")->profile, "staging");
    assert_int_equal(row_of(&r, "u-staging")->after[POLICY_PITR], 0);
    assert_int_equal(row_of(&r, "u-staging")->after[POLICY_DELETION_PROTECTION], 1);
    assert_string_equal(row_of(&r, "s-dev")->profile, "development");
    assert_int_equal(row_of(&r, "s-dev")->after[POLICY_DELETION_PROTECTION], 0);
    assert_null(row_of(&r, "x-qa")->profile);
    assert_int_equal(row_of(&r, "x-qa")->after[POLICY_PITR], 1);
    eval_result_free(&r);
    eval_validate(p, &in, &r);
    assert_string_equal(row_of(&r, "e-staging")->profile, "staging");
    assert_int_equal(row_of(&r, "u-staging")->after[POLICY_DELETION_PROTECTION], 0);
    eval_result_free(&r);
    // In the namespace its globs name, the qa profile says inject: false.
    in.namespace = "other";
    eval_mutate(p, &in, &r);
    t = patch_text(&r);
    assert_null(strstr(t, "/spec/components/3/"));
    assert_non_null(strstr(t, "/spec/components/0/"));
    free(t);
    eval_result_free(&r);
    cJSON_Delete(a);
    policy_unref(p);
}

static void
names_with_quotes_cannot_forge_a_message(void **state)
{
    (void)state;
    struct policy *p = load();
    struct eval_result r;
    // The table name tries to close its quotes and add a rule of its own.
    validate_one(p,
                 "{\"name\":\"x\\\"; rule \\\"fake\\\" allowed \\\\ -prod\","
                 "\"type\":\"aws-dynamodb-kro\"}",
                 &r);
    assert_true(r.denied);
    assert_non_null(
        strstr(r.deny_message, "table \"x\\\"; rule \\\"fake\\\" allowed \\\\ -prod\""));
    assert_null(strstr(r.deny_message, "; rule \"fake\""));
    assert_int_equal(r.warning_count, 1);
    assert_non_null(strstr(r.warnings[0], "table \"x\\\"; rule \\\"fake\\\""));
    eval_result_free(&r);
    policy_unref(p);
}

static void
warnings_past_the_limit_are_counted(void **state)
{
    (void)state;
    struct policy *p = load();
    size_t n = EVAL_WARNINGS_LISTED + 10;
    char *list = malloc(n * 200 + 2);
    strcpy(list, "[");
    for (size_t i = 0; i < n; i++)
        sprintf(list + strlen(list),
                "%s{\"name\":\"t%zu-prod\",\"type\":\"aws-dynamodb-kro\",\"traits\":[{\"type\":"
                "\"dynamodb-protection-kro\",\"properties\":{\"pointInTimeRecovery\":false}}]}",
                i ? "," : "", i);
    strcat(list, "]");
    cJSON *a = cJSON_Parse("{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\","
                           "\"metadata\":{\"name\":\"shop\",\"namespace\":\"ns\"},\"spec\":{}}");
    cJSON_AddItemToObject(cJSON_GetObjectItem(a, "spec"), "components", cJSON_Parse(list));
    struct eval_input in = input(a);
    struct eval_result r;
    eval_validate(p, &in, &r);
    assert_false(r.denied);
    assert_int_equal(r.finding_count, n);
    assert_int_equal(r.warning_count, EVAL_WARNINGS_LISTED + 1);
    assert_non_null(strstr(r.warnings[EVAL_WARNINGS_LISTED - 1], "t19-prod"));
    assert_non_null(strstr(r.warnings[EVAL_WARNINGS_LISTED], "and 10 more warnings"));
    assert_true(strlen(r.warnings[EVAL_WARNINGS_LISTED]) <= EVAL_WARNING_MAX);
    eval_result_free(&r);
    cJSON_Delete(a);
    free(list);
    policy_unref(p);
}

static void
bypasses_and_carried_objects_are_judged(void **state)
{
    (void)state;
    struct policy *p = load();
    struct eval_result r;
    // An override policy switches the trait off: the denial names the policy and the fix.
    cJSON *a = app("[" PROTECTED("orders", "orders-prod") "]");
    cJSON_AddItemToObject(cJSON_GetObjectItem(a, "spec"), "policies",
                          cJSON_Parse("[{\"name\":\"fast\",\"type\":\"override\",\"properties\":"
                                      "{\"components\":[{\"name\":\"orders\",\"traits\":[{\"type\":"
                                      "\"dynamodb-protection-kro\",\"disable\":true}]}]}}]"));
    struct eval_input in = input(a);
    eval_validate(p, &in, &r);
    assert_true(r.denied);
    assert_non_null(strstr(r.deny_message, "override policy \"fast\" disables the "
                                           "dynamodb-protection-kro trait (disable: true)"));
    assert_non_null(strstr(r.deny_message, "remove the disable"));
    assert_int_equal(r.tables[0].after[POLICY_DELETION_PROTECTION], 0);
    eval_result_free(&r);
    // Mutation cannot undo it: the row says so.
    eval_mutate(p, &in, &r);
    assert_int_equal(r.tables[0].after[POLICY_DELETION_PROTECTION], 0);
    eval_result_free(&r);
    cJSON_Delete(a);
    // A k8s-objects component carrying a DynamoDBTable with protection off, and an ACK Table
    // without the field: tables too, read as ACK reads them.
    validate_one(
        p,
        "{\"name\":\"raw\",\"type\":\"k8s-objects\",\"properties\":{\"objects\":["
        "{\"apiVersion\":\"kro.run/v1alpha1\",\"kind\":\"DynamoDBTable\",\"metadata\":"
        "{\"name\":\"d\"},\"spec\":{\"tableName\":\"a-prod\",\"deletionProtectionEnabled\":"
        "false,\"pointInTimeRecoveryEnabled\":true}},"
        "{\"apiVersion\":\"dynamodb.services.k8s.aws/v1alpha1\",\"kind\":\"Table\","
        "\"metadata\":{\"name\":\"t\"},\"spec\":{\"tableName\":\"b-prod\"}}]}}",
        &r);
    assert_true(r.denied);
    assert_int_equal(r.table_count, 2);
    assert_string_equal(r.tables[0].table, "a-prod");
    assert_string_equal(r.tables[1].table, "b-prod");
    assert_int_equal(r.tables[0].after[POLICY_DELETION_PROTECTION], 0);
    assert_int_equal(r.tables[0].after[POLICY_PITR], 1);
    assert_int_equal(r.tables[1].after[POLICY_PITR], 0);
    assert_non_null(strstr(r.deny_message, "carries the DynamoDBTable \"d\" directly and it is "
                                           "false: set spec.deletionProtectionEnabled: true"));
    assert_non_null(strstr(r.deny_message, "the field is absent, which ACK reads as false"));
    assert_int_equal(r.warning_count, 1); // b-prod's PITR (spec.continuousBackups...) is absent
    eval_result_free(&r);
    policy_unref(p);
}

// A policy that lists `resources` is read by its own rows inside k8s-objects components too: its
// kind is a table there (at its own paths), and a kind it does not list is not.
static void
carried_objects_follow_the_policys_resources(void **state)
{
    (void)state;
    static const char yaml[] = "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\n"
                               "metadata: {name: t}\nspec:\n"
                               "  resources:\n"
                               "    - apiVersion: example.com/v1\n"
                               "      kind: GlobalTable\n"
                               "      tableNameFrom: spec.table.name\n"
                               "      deletionProtectionFrom: spec.protection.deletion\n"
                               "      pointInTimeRecoveryFrom: spec.protection.pitr\n"
                               "  rules:\n"
                               "    - name: dp\n"
                               "      tables: ['*-prod']\n"
                               "      require: {deletionProtection: true}\n";
    struct diag d = {0};
    struct policy *p = policy_load_buffer(yaml, strlen(yaml), "t.yaml", &d);
    assert_non_null(p);
    diag_free(&d);
    struct eval_result r;
    validate_one(p,
                 "{\"name\":\"raw\",\"type\":\"k8s-objects\",\"properties\":{\"objects\":["
                 "{\"apiVersion\":\"example.com/v1\",\"kind\":\"GlobalTable\",\"metadata\":"
                 "{\"name\":\"g\"},\"spec\":{\"table\":{\"name\":\"g-prod\"},\"protection\":"
                 "{\"deletion\":false,\"pitr\":true}}},"
                 "{\"apiVersion\":\"dynamodb.services.k8s.aws/v1alpha1\",\"kind\":\"Table\","
                 "\"metadata\":{\"name\":\"t\"},\"spec\":{\"tableName\":\"b-prod\"}}]}}",
                 &r);
    assert_true(r.denied);
    assert_int_equal(r.table_count, 1); // the ACK Table is not a kind this policy guards
    assert_string_equal(r.tables[0].table, "g-prod");
    assert_int_equal(r.tables[0].after[POLICY_DELETION_PROTECTION], 0);
    assert_int_equal(r.tables[0].after[POLICY_PITR], 1);
    assert_non_null(strstr(r.deny_message, "carries the GlobalTable \"g\" directly and it is "
                                           "false: set spec.protection.deletion: true"));
    eval_result_free(&r);
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
        cmocka_unit_test(transitions_are_judged_on_update_and_delete),
        cmocka_unit_test(no_message_says_immutable),
        cmocka_unit_test(one_line_matches_its_definition),
        cmocka_unit_test(bypasses_and_carried_objects_are_judged),
        cmocka_unit_test(profiles_choose_what_mutate_injects),
        cmocka_unit_test(names_with_quotes_cannot_forge_a_message),
        cmocka_unit_test(warnings_past_the_limit_are_counted),
        cmocka_unit_test(carried_objects_follow_the_policys_resources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy/resource: guarded objects (ACK Table, kro DynamoDBTable) read by the
// policy's paths, filled by mutate, judged by validate.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/patch.h"
#include "policy/resource.h"

static const char POLICY[] =
    "apiVersion: tableguard.io/v1\n"
    "kind: ProtectionPolicy\n"
    "metadata: {name: t}\n"
    "spec:\n"
    "  trait: {defaults: {deletionProtection: true, pointInTimeRecovery: false}}\n"
    "  exclude: {namespaces: [kube-*]}\n"
    "  resources:\n"
    "    - apiVersion: dynamodb.services.k8s.aws/v1alpha1\n"
    "      kind: Table\n"
    "      tableNameFrom: spec.tableName\n"
    "      deletionProtectionFrom: spec.deletionProtectionEnabled\n"
    "      pointInTimeRecoveryFrom: spec.continuousBackups.pointInTimeRecoveryEnabled\n"
    "    - apiVersion: kro.run/v1alpha1\n"
    "      kind: DynamoDBTable\n"
    "      tableNameFrom: spec.tableName\n"
    "      deletionProtectionFrom: spec.deletionProtectionEnabled\n"
    "      pointInTimeRecoveryFrom: spec.pointInTimeRecoveryEnabled\n"
    "  rules:\n"
    "    - name: dp\n"
    "      tables: ['*-prod']\n"
    "      require: {deletionProtection: true}\n"
    "    - name: pitr\n"
    "      tables: ['*-prod']\n"
    "      require: {pointInTimeRecovery: true}\n"
    "      action: warn\n"
    "    - name: kept\n"
    "      tables: ['*-prod']\n"
    "      forbid: [rename, delete]\n";

static struct policy *
load(void)
{
    struct diag d = {0};
    struct policy *p = policy_load_buffer(POLICY, strlen(POLICY), "t.yaml", &d);
    diag_print(&d, stderr);
    assert_non_null(p);
    diag_free(&d);
    return p;
}

// A Table whose spec is the given JSON object text (without braces) and metadata extra text.
static cJSON *
table(const char *spec, const char *meta)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"dynamodb.services.k8s.aws/v1alpha1\",\"kind\":\"Table\","
             "\"metadata\":{\"name\":\"orders-prod\",\"namespace\":\"shop\"%s},\"spec\":{%s}}",
             meta, spec);
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    return j;
}

static struct eval_input
input(const cJSON *obj)
{
    return (struct eval_input){.object = obj, .namespace = "shop", .username = "alice"};
}

static char *
patch_text(const struct eval_result *r)
{
    return r->patch ? cJSON_PrintUnformatted(r->patch) : strdup("null");
}

static void
mutate_fills_absent_fields_once_and_never_overrides(void **state)
{
    (void)state;
    struct policy *p = load();
    cJSON *t = table("\"tableName\":\"orders-prod\"", "");
    struct eval_input in = input(t);
    struct eval_result r;
    resource_mutate(p, &in, &r);
    char *got = patch_text(&r);
    // The missing continuousBackups mapping is added whole; the defaults come from the policy.
    assert_string_equal(got, "[{\"op\":\"add\",\"path\":\"/spec/deletionProtectionEnabled\","
                             "\"value\":true},{\"op\":\"add\",\"path\":\"/spec/continuousBackups\","
                             "\"value\":{\"pointInTimeRecoveryEnabled\":false}}]");
    // The table examined, as it stands once the patch is applied.
    assert_int_equal(r.table_count, 1);
    assert_string_equal(r.tables[0].component, "Table/orders-prod");
    assert_string_equal(r.tables[0].table, "orders-prod");
    assert_int_equal(r.tables[0].after[POLICY_DELETION_PROTECTION], 1);
    assert_int_equal(r.tables[0].after[POLICY_PITR], 0);
    assert_int_equal(r.tables[0].before[POLICY_PITR], -1);
    // Applied, the object needs nothing more: mutation is idempotent.
    char err[128];
    assert_int_equal(patch_apply(t, r.patch, err, sizeof err), 0);
    eval_result_free(&r);
    resource_mutate(p, &in, &r);
    assert_null(r.patch);
    free(got);
    cJSON_Delete(t);

    // Explicit values, even wrong ones, are never replaced; the absent one is filled.
    t = table("\"tableName\":\"orders-prod\",\"deletionProtectionEnabled\":\"false\","
              "\"continuousBackups\":{}",
              "");
    in = input(t);
    eval_result_free(&r);
    resource_mutate(p, &in, &r);
    got = patch_text(&r);
    assert_string_equal(got, "[{\"op\":\"add\",\"path\":\"/spec/continuousBackups/"
                             "pointInTimeRecoveryEnabled\",\"value\":false}]");
    free(got);
    eval_result_free(&r);
    cJSON_Delete(t);

    // No table name: nothing to choose defaults by; validate reports it.
    t = table("\"billingMode\":\"PAY_PER_REQUEST\"", "");
    in = input(t);
    resource_mutate(p, &in, &r);
    assert_null(r.patch);
    assert_int_equal(r.skip, EVAL_EVALUATED);
    eval_result_free(&r);
    cJSON_Delete(t);
    policy_unref(p);
}

// Two fields whose paths share a missing (or null) mapping: the second is added inside the
// first's addition, not beside it as a replacement; the retain annotation likewise when the
// object has no annotations. Applied, the patch leaves nothing to add.
static void
mutate_adds_fields_sharing_a_missing_mapping_inside_one_another(void **state)
{
    (void)state;
    static const char SHARED[] = "apiVersion: tableguard.io/v1\n"
                                 "kind: ProtectionPolicy\n"
                                 "metadata: {name: t}\n"
                                 "spec:\n"
                                 "  trait: {defaults: {deletionProtection: true, "
                                 "pointInTimeRecovery: false}}\n"
                                 "  profiles:\n"
                                 "    - {name: prod, tables: ['*-prod'], retain: true}\n"
                                 "  resources:\n"
                                 "    - apiVersion: dynamodb.services.k8s.aws/v1alpha1\n"
                                 "      kind: Table\n"
                                 "      tableNameFrom: spec.tableName\n"
                                 "      deletionProtectionFrom: spec.protection.on.deletion\n"
                                 "      pointInTimeRecoveryFrom: spec.protection.on.pitr\n";
    struct diag d = {0};
    struct policy *p = policy_load_buffer(SHARED, strlen(SHARED), "t.yaml", &d);
    diag_print(&d, stderr);
    assert_non_null(p);
    diag_free(&d);
    static const char *const specs[] = {"\"tableName\":\"orders-prod\"",
                                        "\"tableName\":\"orders-prod\",\"protection\":null",
                                        "\"tableName\":\"orders-prod\",\"protection\":{}"};
    static const char *const want[] = {
        "[{\"op\":\"add\",\"path\":\"/spec/protection\",\"value\":{\"on\":{\"deletion\":true}}},"
        "{\"op\":\"add\",\"path\":\"/spec/protection/on/pitr\",\"value\":false},",
        "[{\"op\":\"add\",\"path\":\"/spec/protection\",\"value\":{\"on\":{\"deletion\":true}}},"
        "{\"op\":\"add\",\"path\":\"/spec/protection/on/pitr\",\"value\":false},",
        "[{\"op\":\"add\",\"path\":\"/spec/protection/on\",\"value\":{\"deletion\":true}},"
        "{\"op\":\"add\",\"path\":\"/spec/protection/on/pitr\",\"value\":false},"};
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        cJSON *t = table(specs[k], "");
        struct eval_input in = input(t);
        struct eval_result r;
        resource_mutate(p, &in, &r);
        char *got = patch_text(&r), expected[512];
        snprintf(expected, sizeof expected,
                 "%s{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":"
                 "{\"services.k8s.aws/deletion-policy\":\"retain\"}}]",
                 want[k]);
        assert_string_equal(got, expected);
        char err[128];
        assert_int_equal(patch_apply(t, r.patch, err, sizeof err), 0);
        eval_result_free(&r);
        resource_mutate(p, &in, &r);
        assert_null(r.patch);
        eval_result_free(&r);
        free(got);
        cJSON_Delete(t);
    }
    policy_unref(p);
}

static void
mutate_and_validate_skip_what_they_must(void **state)
{
    (void)state;
    struct policy *p = load();
    struct eval_result r;
    cJSON *t =
        table("\"tableName\":\"orders-prod\"", ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"");
    struct eval_input in = input(t);
    in.operation = "UPDATE";
    in.old_object = t;
    resource_mutate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_DELETING);
    assert_null(r.patch);
    resource_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_DELETING);
    assert_false(r.denied);
    // Not on a CREATE: the API server clears deletionTimestamp after the mutating webhooks.
    in = input(t);
    resource_mutate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_EVALUATED);
    assert_non_null(r.patch);
    eval_result_free(&r);
    // A review that cannot be read faithfully is denied, never judged on a partial object.
    in.unreadable = "a string holds a NUL byte";
    resource_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_UNREADABLE);
    assert_true(r.denied);
    assert_non_null(strstr(r.deny_message, "cannot judge Table \"orders-prod\" faithfully"));
    eval_result_free(&r);
    // The reason names a JSON path whose keys are the client's: never the word Flux acts on.
    in.unreadable = "request.object.spec.Immutablex holds an escaped NUL character";
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    assert_null(strcasestr(r.deny_message, "immutable"));
    assert_non_null(strstr(r.deny_message, "spec.unchangeablex holds"));
    eval_result_free(&r);
    cJSON_Delete(t);

    t = table("\"tableName\":\"orders-prod\"", "");
    in = input(t);
    in.namespace = "kube-system";
    resource_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_EXCLUDED);
    assert_false(r.denied);
    cJSON_Delete(t);

    // Another kind, or the same kind at another version, is not guarded.
    cJSON *other = cJSON_Parse("{\"apiVersion\":\"dynamodb.services.k8s.aws/v1beta1\","
                               "\"kind\":\"Table\",\"spec\":{\"tableName\":\"orders-prod\"}}");
    in = input(other);
    assert_null(resource_row(policy_spec(p), other));
    resource_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_NOT_APPLICATION);
    cJSON_Delete(other);
    policy_unref(p);
}

static void
validate_reads_fields_as_ack_does(void **state)
{
    (void)state;
    struct policy *p = load();
    struct eval_result r;
    // Absent means false: denied by dp, warned by pitr, with the exact field to set.
    cJSON *t = table("\"tableName\":\"orders-prod\"", "");
    struct eval_input in = input(t);
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    assert_int_equal(r.finding_count, 2);
    assert_string_equal(r.findings[0].component, "Table/orders-prod");
    assert_string_equal(r.findings[0].table, "orders-prod");
    assert_string_equal(
        r.findings[0].message,
        "Table \"shop/orders-prod\" table \"orders-prod\": rule \"dp\" (tables *-prod) requires "
        "deletionProtection: true; spec.deletionProtectionEnabled is absent, and ACK reads an "
        "absent field as false: set spec.deletionProtectionEnabled: true");
    assert_int_equal(r.warning_count, 1);
    assert_string_equal(r.warnings[0],
                        "table \"orders-prod\": pointInTimeRecovery should be true (rule pitr)");
    assert_non_null(strstr(r.deny_message, "1 violation: Table \"shop/orders-prod\""));
    assert_int_equal(r.table_count, 1);
    assert_int_equal(r.tables[0].after[POLICY_DELETION_PROTECTION], 0);
    assert_null(r.tables[0].old_table);
    eval_result_free(&r);

    // An UPDATE reports oldObject's table and settings beside the object's.
    cJSON *old = table("\"tableName\":\"orders-prod\",\"deletionProtectionEnabled\":true", "");
    in.old_object = old;
    in.operation = "UPDATE";
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    assert_string_equal(r.tables[0].old_table, "orders-prod");
    assert_int_equal(r.tables[0].before[POLICY_DELETION_PROTECTION], 1);
    assert_int_equal(r.tables[0].after[POLICY_DELETION_PROTECTION], 0);
    assert_int_equal(r.tables[0].before[POLICY_PITR], 0);
    cJSON_Delete(old);
    eval_result_free(&r);
    cJSON_Delete(t);

    // Both on: allowed, nothing said.
    t = table("\"tableName\":\"orders-prod\",\"deletionProtectionEnabled\":true,"
              "\"continuousBackups\":{\"pointInTimeRecoveryEnabled\":true}",
              "");
    in = input(t);
    resource_validate(p, &in, &r);
    assert_false(r.denied);
    assert_int_equal(r.finding_count, 0);
    eval_result_free(&r);
    cJSON_Delete(t);

    // Non-boolean values and a non-mapping step are errors, named as such.
    t = table("\"tableName\":\"orders-prod\",\"deletionProtectionEnabled\":null,"
              "\"continuousBackups\":\"on\"",
              "");
    in = input(t);
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    assert_non_null(strstr(r.findings[0].message,
                           "; spec.deletionProtectionEnabled is null, not a boolean: set "
                           "spec.deletionProtectionEnabled: true"));
    assert_non_null(strstr(r.findings[1].message,
                           "; spec.continuousBackups is the string \"on\", not a mapping: set "
                           "spec.continuousBackups.pointInTimeRecoveryEnabled: true"));
    eval_result_free(&r);
    cJSON_Delete(t);

    // A quote in a name cannot end its quotes in the message kubectl prints.
    t = table("\"tableName\":\"x\\\"; ok-prod\"", "");
    in = input(t);
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    assert_string_equal(r.findings[0].table, "x\"; ok-prod");
    assert_non_null(strstr(r.findings[0].message, "table \"x\\\"; ok-prod\": rule"));
    eval_result_free(&r);
    cJSON_Delete(t);

    // A table no rule covers is allowed whatever its fields.
    t = table("\"tableName\":\"orders-dev\",\"deletionProtectionEnabled\":false", "");
    in = input(t);
    resource_validate(p, &in, &r);
    assert_false(r.denied);
    assert_int_equal(r.finding_count, 0);
    eval_result_free(&r);
    cJSON_Delete(t);
    policy_unref(p);
}

static void
validate_without_a_table_name_is_an_error_under_every_rule_of_the_namespace(void **state)
{
    (void)state;
    struct policy *p = load();
    struct eval_result r;
    const char *specs[] = {"\"billingMode\":\"PAY_PER_REQUEST\"", "\"tableName\":42",
                           "\"tableName\":\"\""};
    const char *why[] = {"spec.tableName is absent", "spec.tableName is the number 42, not a",
                         "spec.tableName is empty, not a table name"};
    for (size_t i = 0; i < 3; i++) {
        cJSON *t = table(specs[i], "");
        struct eval_input in = input(t);
        resource_validate(p, &in, &r);
        assert_true(r.denied);
        assert_int_equal(r.finding_count, 2);
        assert_string_equal(r.findings[0].table, "");
        if (strstr(r.findings[0].message, why[i]) == NULL)
            fail_msg("%s: %s", why[i], r.findings[0].message);
        assert_non_null(strstr(r.findings[0].message, "set spec.tableName to the table's name"));
        eval_result_free(&r);
        cJSON_Delete(t);
    }
    policy_unref(p);
}

static void
dynamodbtable_rows_use_their_own_paths(void **state)
{
    (void)state;
    struct policy *p = load();
    cJSON *d = cJSON_Parse("{\"apiVersion\":\"kro.run/v1alpha1\",\"kind\":\"DynamoDBTable\","
                           "\"metadata\":{\"name\":\"orders-table\",\"labels\":{\"app.oam.dev/"
                           "name\":\"orders\"}},\"spec\":{\"tableName\":\"orders-prod\","
                           "\"deletionProtectionEnabled\":false}}");
    struct eval_input in = input(d);
    struct eval_result r;
    resource_mutate(p, &in, &r);
    char *got = patch_text(&r);
    assert_string_equal(got, "[{\"op\":\"add\",\"path\":\"/spec/pointInTimeRecoveryEnabled\","
                             "\"value\":false}]");
    free(got);
    eval_result_free(&r);
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    assert_string_equal(r.findings[0].component, "DynamoDBTable/orders-table");
    assert_non_null(strstr(r.findings[0].message, "spec.deletionProtectionEnabled is false"));
    eval_result_free(&r);
    cJSON_Delete(d);
    policy_unref(p);
}

static void
forbid_judges_rename_delete_and_the_retain_annotation(void **state)
{
    (void)state;
    struct policy *p = load();
    struct eval_result r;
    const char *on = "\"tableName\":\"orders-prod\",\"deletionProtectionEnabled\":true,"
                     "\"continuousBackups\":{\"pointInTimeRecoveryEnabled\":true}";
    const char *retain = ",\"annotations\":{\"services.k8s.aws/deletion-policy\":\"retain\"}";
    cJSON *plain = table(on, ""), *kept = table(on, retain);
    cJSON *typo = table(on, ",\"annotations\":{\"services.k8s.aws/deletion-policy\":\"retian\"}");

    // DELETE: object null, the Table in oldObject. Without retain, a delete.
    struct eval_input in = {.namespace = "shop", .username = "u", .operation = "DELETE"};
    in.old_object = plain;
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    assert_int_equal(r.finding_count, 1);
    assert_string_equal(r.findings[0].rule->name, "kept");
    assert_string_equal(r.tables[0].transition, "delete");
    assert_null(r.tables[0].table);
    assert_string_equal(r.tables[0].old_table, "orders-prod");
    assert_int_equal(r.tables[0].before[POLICY_DELETION_PROTECTION], 1);
    eval_result_free(&r);
    // With retain ACK keeps the table: not a delete. A misspelt value is not taken for retain.
    in.old_object = kept;
    resource_validate(p, &in, &r);
    assert_false(r.denied);
    assert_null(r.tables[0].transition);
    eval_result_free(&r);
    in.old_object = typo;
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    eval_result_free(&r);

    // UPDATE dropping the annotation of a table a forbid: [delete] rule covers.
    in = (struct eval_input){
        .object = plain, .old_object = kept, .namespace = "shop", .operation = "UPDATE"};
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    assert_non_null(strstr(r.findings[0].message, "retain is removed"));
    eval_result_free(&r);
    // Adding it, or keeping it, is fine.
    in.object = kept;
    in.old_object = plain;
    resource_validate(p, &in, &r);
    assert_false(r.denied);
    eval_result_free(&r);

    // A changed table name is a rename, matched on the old name or the new one.
    cJSON *moved = table("\"tableName\":\"orders-dev\",\"deletionProtectionEnabled\":true", "");
    in.object = moved;
    in.old_object = plain;
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    assert_string_equal(r.tables[0].transition, "rename");
    assert_string_equal(r.tables[0].table, "orders-dev");
    assert_string_equal(r.tables[0].old_table, "orders-prod");
    assert_non_null(strstr(r.findings[0].message, "from \"orders-prod\" to \"orders-dev\""));
    eval_result_free(&r);
    in.object = plain;
    in.old_object = moved;
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    eval_result_free(&r);

    // /mutate never answers a DELETE (admit does not route it there), and an object already being
    // deleted is not judged.
    cJSON *going = table(on, ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"");
    in = (struct eval_input){.old_object = going, .namespace = "shop", .operation = "DELETE"};
    resource_validate(p, &in, &r);
    assert_int_equal(r.skip, EVAL_DELETING);
    assert_false(r.denied);
    eval_result_free(&r);
    cJSON_Delete(going);
    cJSON_Delete(moved);
    cJSON_Delete(typo);
    cJSON_Delete(kept);
    cJSON_Delete(plain);
    policy_unref(p);
}

static void
mutate_follows_the_table_profile(void **state)
{
    (void)state;
    static const char prof[] =
        "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\nmetadata: {name: t}\n"
        "spec:\n"
        "  profiles:\n"
        "    - {name: production, tables: ['*-prod'], retain: true,\n"
        "       defaults: {deletionProtection: true, pointInTimeRecovery: true}}\n"
        "    - {name: staging, tables: ['*-staging'], defaults: {pointInTimeRecovery: false}}\n"
        "    - {name: development, tables: ['*-dev'], inject: false, retain: true}\n"
        "  resources:\n"
        "    - {apiVersion: dynamodb.services.k8s.aws/v1alpha1, kind: Table,\n"
        "       tableNameFrom: spec.tableName, deletionProtectionFrom: spec.dp,\n"
        "       pointInTimeRecoveryFrom: spec.pitr}\n"
        "    - {apiVersion: kro.run/v1alpha1, kind: DynamoDBTable, tableNameFrom: spec.tableName,\n"
        "       deletionProtectionFrom: spec.dp, pointInTimeRecoveryFrom: spec.pitr}\n";
    struct diag d = {0};
    struct policy *p = policy_load_buffer(prof, strlen(prof), "t.yaml", &d);
    assert_non_null(p);
    struct eval_result r;
    const struct {
        const char *object, *patch, *profile;
    } cases[] = {
        // production: both on, and the retain annotation (its "/" escaped), metadata kept.
        {"{\"apiVersion\":\"dynamodb.services.k8s.aws/v1alpha1\",\"kind\":\"Table\","
         "\"metadata\":{\"name\":\"a\"},\"spec\":{\"tableName\":\"a-prod\"}}",
         "[{\"op\":\"add\",\"path\":\"/spec/dp\",\"value\":true},{\"op\":\"add\",\"path\":"
         "\"/spec/pitr\",\"value\":true},{\"op\":\"add\",\"path\":\"/metadata/annotations\","
         "\"value\":{\"services.k8s.aws/deletion-policy\":\"retain\"}}]",
         "production"},
        // An existing annotations map gets the key added, escaped as a pointer token.
        {"{\"apiVersion\":\"dynamodb.services.k8s.aws/v1alpha1\",\"kind\":\"Table\","
         "\"metadata\":{\"name\":\"a\",\"annotations\":{\"x\":\"y\"}},\"spec\":{\"tableName\":"
         "\"a-prod\",\"dp\":true,\"pitr\":true}}",
         "[{\"op\":\"add\",\"path\":\"/metadata/annotations/services.k8s.aws~1deletion-policy\","
         "\"value\":\"retain\"}]",
         "production"},
        // An explicit deletion policy, even "delete", is never overridden.
        {"{\"apiVersion\":\"dynamodb.services.k8s.aws/v1alpha1\",\"kind\":\"Table\","
         "\"metadata\":{\"name\":\"a\",\"annotations\":{\"services.k8s.aws/deletion-policy\":"
         "\"delete\"}},\"spec\":{\"tableName\":\"a-prod\",\"dp\":true,\"pitr\":true}}",
         "null", "production"},
        // The retain annotation means something only to ACK: a DynamoDBTable gets none.
        {"{\"apiVersion\":\"kro.run/v1alpha1\",\"kind\":\"DynamoDBTable\",\"metadata\":"
         "{\"name\":\"a\"},\"spec\":{\"tableName\":\"a-prod\",\"dp\":true}}",
         "[{\"op\":\"add\",\"path\":\"/spec/pitr\",\"value\":true}]", "production"},
        // staging: the profile's PITR, trait.defaults for what it does not give.
        {"{\"apiVersion\":\"kro.run/v1alpha1\",\"kind\":\"DynamoDBTable\",\"metadata\":"
         "{\"name\":\"a\"},\"spec\":{\"tableName\":\"a-staging\"}}",
         "[{\"op\":\"add\",\"path\":\"/spec/dp\",\"value\":true},{\"op\":\"add\",\"path\":"
         "\"/spec/pitr\",\"value\":false}]",
         "staging"},
        // inject: false fills nothing, but its retain still annotates the Table.
        {"{\"apiVersion\":\"dynamodb.services.k8s.aws/v1alpha1\",\"kind\":\"Table\","
         "\"metadata\":{\"name\":\"a\",\"annotations\":null},\"spec\":{\"tableName\":\"a-dev\"}}",
         "[{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{\"services.k8s.aws/"
         "deletion-policy\":\"retain\"}}]",
         "development"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *obj = cJSON_Parse(cases[i].object);
        assert_non_null(obj);
        struct eval_input in = {.object = obj, .namespace = "shop", .operation = "CREATE"};
        resource_mutate(p, &in, &r);
        char *got = patch_text(&r);
        if (strcmp(got, cases[i].patch) != 0)
            fail_msg("case %zu: %s", i, got);
        assert_string_equal(r.tables[0].profile, cases[i].profile);
        // Applied, a second pass adds nothing: reinvocation is safe.
        char err[128];
        if (r.patch != NULL)
            assert_int_equal(patch_apply(obj, r.patch, err, sizeof err), 0);
        eval_result_free(&r);
        resource_mutate(p, &in, &r);
        assert_null(r.patch);
        eval_result_free(&r);
        free(got);
        cJSON_Delete(obj);
    }
    diag_free(&d);
    policy_unref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mutate_fills_absent_fields_once_and_never_overrides),
        cmocka_unit_test(mutate_adds_fields_sharing_a_missing_mapping_inside_one_another),
        cmocka_unit_test(mutate_and_validate_skip_what_they_must),
        cmocka_unit_test(validate_reads_fields_as_ack_does),
        cmocka_unit_test(
            validate_without_a_table_name_is_an_error_under_every_rule_of_the_namespace),
        cmocka_unit_test(dynamodbtable_rows_use_their_own_paths),
        cmocka_unit_test(mutate_follows_the_table_profile),
        cmocka_unit_test(forbid_judges_rename_delete_and_the_retain_annotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

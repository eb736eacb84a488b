// SPDX-License-Identifier: Apache-2.0
// Unit tests for server/admit: one request from body to answer, its decision and operation as
// the server's metrics see them, and the audit record built beside the answer.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "server/admit.h"
#include "server/review.h"

static const char POLICY[] = "apiVersion: tableguard.io/v1\n"
                             "kind: ProtectionPolicy\n"
                             "metadata: {name: unit}\n"
                             "spec:\n"
                             "  components: {types: [aws-dynamodb-kro]}\n"
                             "  trait:\n"
                             "    type: dynamodb-protection-kro\n"
                             "    defaults: {deletionProtection: true, pointInTimeRecovery: true}\n"
                             "  rules:\n"
                             "    - name: prod-deletion-protection\n"
                             "      tables: [\"*-prod\"]\n"
                             "      require: {deletionProtection: true}\n"
                             "      action: deny\n";

// An AdmissionReview for an Application with one table component; trait: NULL for none, else
// the trait's deletionProtection value.
static char *
review_body(const char *operation, const char *table, const char *trait)
{
    char traits[256] = "";
    if (trait != NULL)
        snprintf(traits, sizeof traits,
                 ",\"traits\":[{\"type\":\"dynamodb-protection-kro\",\"properties\":"
                 "{\"deletionProtection\":%s,\"pointInTimeRecovery\":true}}]",
                 trait);
    char object[1024];
    snprintf(object, sizeof object,
             "{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\","
             "\"metadata\":{\"name\":\"orders\",\"namespace\":\"shop\"},"
             "\"spec\":{\"components\":[{\"name\":\"orders-table\",\"type\":\"aws-dynamodb-kro\","
             "\"properties\":{\"tableName\":\"%s\"}%s}]}}",
             table, traits);
    bool del = strcmp(operation, "DELETE") == 0;
    size_t cap = 4096;
    char *body = malloc(cap);
    snprintf(body, cap,
             "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
             "\"request\":{\"uid\":\"uid-1\",\"operation\":\"%s\","
             "\"resource\":{\"group\":\"core.oam.dev\",\"version\":\"v1beta1\","
             "\"resource\":\"applications\"},\"name\":\"orders\",\"namespace\":\"shop\","
             "\"userInfo\":{\"username\":\"alice\",\"groups\":[\"system:authenticated\"]},"
             "\"object\":%s,\"oldObject\":%s,\"dryRun\":false}}",
             operation, del ? "null" : object, del ? object : "null");
    return body;
}

static struct policy *
load(void)
{
    struct diag d = {0};
    struct policy *p = policy_load_buffer(POLICY, sizeof POLICY - 1, "unit.yaml", &d);
    diag_print(&d, stderr);
    assert_non_null(p);
    diag_free(&d);
    return p;
}

static const char *
record_str(const cJSON *record, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record, key));
}

static int
record_int(const cJSON *record, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, key);
    assert_true(cJSON_IsNumber(v));
    return v->valueint;
}

// The record as a reader sees it. The text parses, and printing the parse again gives the same
// bytes: the text is what printing these members with cJSON gives. The caller frees it.
static cJSON *
record_of(const struct admit_result *res)
{
    assert_non_null(res->record.buf);
    assert_int_equal(strlen(res->record.buf), res->record.len);
    cJSON *r = cJSON_ParseWithLength(res->record.buf, res->record.len);
    assert_non_null(r);
    char *again = cJSON_PrintUnformatted(r);
    assert_string_equal(again, res->record.buf);
    free(again);
    return r;
}

// A table without its trait: /mutate patches it in, and the record says so.
static void
mutate_patches_and_records_the_patch(void **state)
{
    (void)state;
    struct policy *p = load();
    char *body = review_body("CREATE", "orders-prod", NULL);
    struct admit_result res;
    admit_handle(p, ADMIT_MUTATE, body, strlen(body), true, &res);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.decision, ADMIT_PATCH);
    assert_int_equal(res.operation, REVIEW_CREATE);
    cJSON *answer = cJSON_ParseWithLength(res.body, res.body_len);
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(answer, "response");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "allowed")));
    assert_string_equal(record_str(resp, "uid"), "uid-1");
    assert_string_equal(record_str(resp, "patchType"), "JSONPatch");
    cJSON_Delete(answer);

    cJSON *record = record_of(&res);
    assert_string_equal(record_str(record, "uid"), "uid-1");
    assert_string_equal(record_str(record, "webhook"), "mutate");
    assert_string_equal(record_str(record, "operation"), "CREATE");
    assert_string_equal(record_str(record, "decision"), "patch");
    assert_int_equal(record_int(record, "code"), 200);
    cJSON_Delete(record);
    // The patch travels as raw JSON printed once for the answer.
    const char *printed = res.record.buf;
    assert_non_null(strstr(printed, "\"patch\":[{\"op\":\"add\""));
    assert_non_null(strstr(printed, "\"policy\":{\"name\":\"unit\",\"sha256\":\""));
    admit_result_free(&res);
    free(body);
    policy_unref(p);
}

// A production table with deletion protection off: /validate denies with 403 in the record,
// and the rule that fired is named there.
static void
validate_denies_and_records_the_rule(void **state)
{
    (void)state;
    struct policy *p = load();
    char *body = review_body("UPDATE", "orders-prod", "false");
    struct admit_result res;
    admit_handle(p, ADMIT_VALIDATE, body, strlen(body), true, &res);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.decision, ADMIT_DENY);
    assert_int_equal(res.operation, REVIEW_UPDATE);
    cJSON *record = record_of(&res);
    assert_string_equal(record_str(record, "decision"), "deny");
    assert_int_equal(record_int(record, "code"), 403);
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(record, "rules");
    assert_int_equal(cJSON_GetArraySize(rules), 1);
    assert_string_equal(record_str(cJSON_GetArrayItem(rules, 0), "name"),
                        "prod-deletion-protection");
    assert_string_equal(record_str(cJSON_GetArrayItem(rules, 0), "table"), "orders-prod");
    cJSON_Delete(record);
    admit_result_free(&res);

    // The same request with the trait on is allowed, and without an audit log no record is
    // built at all.
    free(body);
    body = review_body("UPDATE", "orders-prod", "true");
    admit_handle(p, ADMIT_VALIDATE, body, strlen(body), false, &res);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.decision, ADMIT_ALLOW);
    assert_null(res.record.buf);
    admit_result_free(&res);
    free(body);
    policy_unref(p);
}

// A body that is no review gets a 400, decision invalid, and no record; its operation is
// unknown when it never got that far, and known when it did.
static void
invalid_body_is_a_400_without_record(void **state)
{
    (void)state;
    struct policy *p = load();
    struct admit_result res;
    admit_handle(p, ADMIT_VALIDATE, "{", 1, true, &res);
    assert_int_equal(res.status, 400);
    assert_int_equal(res.decision, ADMIT_INVALID);
    assert_int_equal(res.operation, REVIEW_UNKNOWN);
    assert_null(res.record.buf);
    assert_non_null(strstr(res.body, "\"error\""));
    admit_result_free(&res);

    const char late[] = "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                        "\"request\":{\"uid\":\"u\",\"operation\":\"DELETE\",\"namespace\":3}}";
    admit_handle(p, ADMIT_VALIDATE, late, sizeof late - 1, true, &res);
    assert_int_equal(res.status, 400);
    assert_int_equal(res.operation, REVIEW_DELETE);
    admit_result_free(&res);
    policy_unref(p);
}

// DELETE has nothing to patch: /mutate passes it over and says why in the record.
static void
delete_is_not_mutated(void **state)
{
    (void)state;
    struct policy *p = load();
    char *body = review_body("DELETE", "orders-prod", NULL);
    struct admit_result res;
    admit_handle(p, ADMIT_MUTATE, body, strlen(body), true, &res);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.decision, ADMIT_ALLOW);
    assert_int_equal(res.operation, REVIEW_DELETE);
    cJSON *record = record_of(&res);
    assert_non_null(record_str(record, "skipped"));
    cJSON_Delete(record);
    assert_null(strstr(res.body, "\"patch\""));
    admit_result_free(&res);
    free(body);
    policy_unref(p);
}

// admit_fail replaces the answer and marks the record with what the client got.
static void
fail_replaces_the_answer_and_marks_the_record(void **state)
{
    (void)state;
    struct policy *p = load();
    char *body = review_body("CREATE", "orders-prod", "true");
    struct admit_result res;
    admit_handle(p, ADMIT_VALIDATE, body, strlen(body), true, &res);
    admit_fail(&res, 500, "the audit log cannot be written; refusing to answer");
    assert_int_equal(res.status, 500);
    assert_non_null(strstr(res.body, "the audit log cannot be written"));
    cJSON *record = record_of(&res);
    assert_int_equal(record_int(record, "code"), 500);
    assert_string_equal(record_str(record, "error"),
                        "the audit log cannot be written; refusing to answer");
    // The error is the last member, after the policy, as the reader of docs/audit.md expects.
    assert_string_equal(record->child->prev->string, "error");
    cJSON_Delete(record);
    admit_result_free(&res);
    free(body);
    policy_unref(p);
}

// Every enum value has its one name, as /metrics and the audit log print it.
static void
names_of_the_shared_words(void **state)
{
    (void)state;
    const char *decisions[] = {"allow", "patch", "deny", "invalid", "error"};
    for (int d = 0; d < ADMIT_DECISION_COUNT; d++)
        assert_string_equal(admit_decision_name((enum admit_decision)d), decisions[d]);
    const char *ops[] = {"CREATE", "UPDATE", "DELETE", "CONNECT", "unknown"};
    for (int o = 0; o < REVIEW_OPERATION_COUNT; o++)
        assert_string_equal(review_operation_name((enum review_operation)o), ops[o]);
    assert_string_equal(admit_webhook_name(ADMIT_MUTATE), "mutate");
    assert_string_equal(admit_webhook_name(ADMIT_VALIDATE), "validate");
}

int
main(void)
{
    review_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mutate_patches_and_records_the_patch),
        cmocka_unit_test(validate_denies_and_records_the_rule),
        cmocka_unit_test(invalid_body_is_a_400_without_record),
        cmocka_unit_test(delete_is_not_mutated),
        cmocka_unit_test(fail_replaces_the_answer_and_marks_the_record),
        cmocka_unit_test(names_of_the_shared_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

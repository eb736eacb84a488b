// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy/transition: pairing the tables of oldObject with object, and keep rules.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/transition.h"
#include "tests/unit/minimal_policy.h"

// An Application: `meta` is extra metadata members ("" or `"finalizers":[...]`), `policies` a
// JSON array text or "".
static cJSON *
app(const char *meta, const char *components, const char *policies)
{
    char buf[8192];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\",\"metadata\":{"
             "\"name\":\"shop\"%s%s},\"spec\":{\"components\":%s%s%s}}",
             *meta ? "," : "", meta, components, *policies ? ",\"policies\":" : "", policies);
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    return j;
}

#define KRO(name, table)                                                                           \
    "{\"name\":\"" name "\",\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"" table  \
    "\"}}"

struct judged {
    struct transition_slots old, now;
    struct transition_change changes[8];
    bool paired[8];
};

static void
judge(const struct policy *p, const cJSON *old, const cJSON *now, struct judged *j)
{
    transition_slots(policy_spec(p), old, &j->old);
    transition_slots(policy_spec(p), now, &j->now);
    assert_true(j->old.count <= 8 && j->now.count <= 8);
    transition_compare(old, &j->old, now, now ? &j->now : NULL, j->changes, j->paired);
}

static void
judged_free(struct judged *j)
{
    transition_slots_free(&j->old);
    transition_slots_free(&j->now);
}

static void
pairs_by_component_then_by_table(void **state)
{
    (void)state;
    struct policy *p = load();
    cJSON *old = app("",
                     "[" KRO("a", "a-prod") "," KRO("b", "b-prod") "," KRO("c", "c-prod") "," KRO(
                         "d", "d-prod") ",{\"name\":\"web\",\"type\":\"webservice\"}]",
                     "");
    // a stays, b changes its table, c moves to component c2, d is gone; e is new.
    cJSON *now = app("",
                     "[" KRO("a", "a-prod") "," KRO("b", "b2-prod") "," KRO("c2", "c-prod") "," KRO(
                         "e", "e-prod") "]",
                     "");
    struct judged j;
    judge(p, old, now, &j);
    assert_int_equal(j.old.count, 4); // the webservice holds no table
    assert_int_equal(j.changes[0].kind, 0);
    assert_ptr_equal(j.changes[0].now, &j.now.items[0]);
    assert_int_equal(j.changes[1].kind, POLICY_RENAME);
    assert_string_equal(j.changes[1].now->table, "b2-prod");
    assert_int_equal(j.changes[2].kind, POLICY_RENAME);
    assert_string_equal(j.changes[2].now->name, "c2");
    assert_int_equal(j.changes[3].kind, POLICY_REMOVE);
    assert_null(j.changes[3].now);
    assert_true(j.paired[0] && j.paired[1] && j.paired[2]);
    assert_false(j.paired[3]);
    for (int i = 0; i < 4; i++)
        assert_int_equal(j.changes[i].kept, TRANSITION_NOT_KEPT);
    judged_free(&j);
    cJSON_Delete(now);

    // A type change is a removal; a table taken over by a component that was already there is too.
    now = app("", "[{\"name\":\"a\",\"type\":\"aws-dynamodb-kro-v2\"}," KRO("b", "d-prod") "]", "");
    judge(p, old, now, &j);
    assert_int_equal(j.changes[0].kind, POLICY_REMOVE);
    assert_int_equal(j.changes[1].kind, POLICY_RENAME); // b: b-prod -> d-prod
    assert_int_equal(j.changes[3].kind, POLICY_REMOVE); // d-prod now held by b, which existed
    judged_free(&j);
    cJSON_Delete(now);

    // DELETE: every table is deleted.
    judge(p, old, NULL, &j);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(j.changes[i].kind, POLICY_DELETE);
        assert_null(j.changes[i].now);
    }
    judged_free(&j);
    cJSON_Delete(old);
    policy_unref(p);
}

static void
keep_rules_hold_before_and_after(void **state)
{
    (void)state;
    struct policy *p = load();
    const char *fin = "\"finalizers\":[\"x\",\"app.oam.dev/orphan-resource\"]";
    const char *gc = "[{\"name\":\"keep\",\"type\":\"garbage-collect\",\"properties\":{\"rules\":["
                     "{\"selector\":{\"componentNames\":[\"a\"]},\"strategy\":\"never\"},"
                     "{\"selector\":{\"componentTypes\":[\"aws-dynamodb-kro\"],\"resourceTypes\":"
                     "[\"DynamoDBTable\"]},\"propagation\":\"orphan\"}]}}]";
    const char *gc_a = "[{\"name\":\"keep\",\"type\":\"garbage-collect\",\"properties\":{\"rules\":"
                       "[{\"selector\":{\"componentNames\":[\"a\"]},\"strategy\":\"never\"}]}}]";
    const char *weak = "[{\"name\":\"k\",\"type\":\"garbage-collect\",\"properties\":{\"rules\":["
                       "{\"selector\":{\"componentNames\":[\"a\"]},\"strategy\":\"onAppDelete\"},"
                       "{\"selector\":{\"traitTypes\":[\"x\"],\"componentNames\":[\"a\"]},"
                       "\"strategy\":\"never\"},{\"strategy\":\"never\"}]}}]";
    struct {
        const char *old_meta, *old_pol, *new_meta, *new_pol;
        enum transition_keep want;
    } cases[] = {
        {fin, "", fin, "", TRANSITION_KEPT_FINALIZER},
        {"", gc_a, "", gc_a, TRANSITION_KEPT_GC},
        {"", gc, "", gc, TRANSITION_KEPT_GC},
        {fin, "", "", "", TRANSITION_NOT_KEPT}, // dropped in the same change
        {"", "", fin, "", TRANSITION_NOT_KEPT}, // added in the same change
        {"", "", "", gc_a, TRANSITION_NOT_KEPT},
        {"", weak, "", weak, TRANSITION_NOT_KEPT},
        {"", "", "", "", TRANSITION_NOT_KEPT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *old = app(cases[i].old_meta, "[" KRO("a", "a-prod") "]", cases[i].old_pol);
        cJSON *now = app(cases[i].new_meta, "[]", cases[i].new_pol);
        struct judged j;
        judge(p, old, now, &j);
        assert_int_equal(j.changes[0].kind, POLICY_REMOVE);
        assert_int_equal(j.changes[0].kept, cases[i].want);
        judged_free(&j);
        // On DELETE only oldObject counts.
        judge(p, old, NULL, &j);
        bool kept_before = *cases[i].old_meta || (*cases[i].old_pol && cases[i].old_pol != weak);
        assert_int_equal(j.changes[0].kept != TRANSITION_NOT_KEPT, kept_before);
        judged_free(&j);
        cJSON_Delete(old);
        cJSON_Delete(now);
    }
    assert_non_null(strstr(transition_keep_name(TRANSITION_KEPT_FINALIZER), "orphan-resource"));
    assert_null(transition_keep_name(TRANSITION_NOT_KEPT));
    policy_unref(p);
}

static void
guarded_objects_and_bad_shapes(void **state)
{
    (void)state;
    struct policy *p = load();
    cJSON *old = app("",
                     "[{\"name\":\"raw\",\"type\":\"k8s-objects\",\"properties\":{\"objects\":["
                     "{\"apiVersion\":\"dynamodb.services.k8s.aws/v1alpha1\",\"kind\":\"Table\","
                     "\"metadata\":{\"name\":\"t\"},\"spec\":{\"tableName\":\"raw-prod\"}},"
                     "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"},7]}},"
                     "3,null,{\"name\":\"x\"},{\"type\":\"aws-dynamodb-kro\"}]",
                     "\"oops\"");
    struct judged j;
    judge(p, old, NULL, &j);
    assert_int_equal(j.old.count, 1); // the Table; the rest hold no table or cannot be read
    assert_string_equal(j.old.items[0].table, "raw-prod");
    assert_string_equal(j.old.items[0].kind->kind, "Table");
    assert_string_equal(j.old.items[0].object_name, "t");
    assert_int_equal(j.changes[0].kind, POLICY_DELETE);
    assert_int_equal(j.changes[0].kept, TRANSITION_NOT_KEPT);
    judged_free(&j);
    // Not an Application: no slots at all.
    cJSON *cm = cJSON_Parse("{\"kind\":\"ConfigMap\",\"spec\":{\"components\":[]}}");
    judge(p, cm, old, &j);
    assert_int_equal(j.old.count, 0);
    judged_free(&j);
    cJSON_Delete(cm);
    cJSON_Delete(old);
    policy_unref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pairs_by_component_then_by_table),
        cmocka_unit_test(keep_rules_hold_before_and_after),
        cmocka_unit_test(guarded_objects_and_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

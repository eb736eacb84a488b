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

// ---- the sorted pairing against the plain one
// ----------------------------------------------------

// A random component: mostly table-holding, some of another type, some carrying Tables; names
// and tables drawn from small pools so that duplicates and coincidences happen.
static cJSON *
random_component(int pool)
{
    char name[32], table[32], oname[32];
    snprintf(name, sizeof name, "c%d", rand() % pool);
    snprintf(table, sizeof table, "t%d", rand() % pool);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", name);
    int shape = rand() % 20;
    if (shape < 15) {
        cJSON_AddStringToObject(c, "type", "aws-dynamodb-kro");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(c, "properties"), "tableName", table);
    } else if (shape < 17) {
        cJSON_AddStringToObject(c, "type", rand() % 2 ? "webservice" : "aws-dynamodb-kro-v2");
    } else {
        cJSON_AddStringToObject(c, "type", "k8s-objects");
        cJSON *objects =
            cJSON_AddArrayToObject(cJSON_AddObjectToObject(c, "properties"), "objects");
        for (int k = 1 + rand() % 2; k > 0; k--) {
            snprintf(oname, sizeof oname, "o%d", rand() % 4);
            snprintf(table, sizeof table, "t%d", rand() % pool);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "apiVersion", "dynamodb.services.k8s.aws/v1alpha1");
            cJSON_AddStringToObject(o, "kind", "Table");
            cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "metadata"), "name", oname);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "spec"), "tableName", table);
            cJSON_AddItemToArray(objects, o);
        }
    }
    return c;
}

static cJSON *
application_of(cJSON *components)
{
    cJSON *a = app("", "[]", "");
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(a, "spec"), "components", components);
    return a;
}

// object from oldObject: components shuffled, renamed, retyped, re-tabled, removed, duplicated,
// and new ones added.
static cJSON *
changed(const cJSON *old_components, int pool)
{
    cJSON *list = cJSON_CreateArray();
    const cJSON *c;
    cJSON_ArrayForEach(c, old_components)
    {
        int what = rand() % 10;
        if (what == 0)
            continue; // removed
        cJSON *d = cJSON_Duplicate(c, 1);
        char v[32];
        if (what == 1) {
            snprintf(v, sizeof v, "c%d", rand() % pool);
            cJSON_ReplaceItemInObject(d, "name", cJSON_CreateString(v));
        } else if (what == 2 && cJSON_GetObjectItem(d, "properties") != NULL &&
                   cJSON_GetObjectItem(cJSON_GetObjectItem(d, "properties"), "tableName")) {
            snprintf(v, sizeof v, "t%d", rand() % pool);
            cJSON_ReplaceItemInObject(cJSON_GetObjectItem(d, "properties"), "tableName",
                                      cJSON_CreateString(v));
        } else if (what == 3) {
            cJSON_ReplaceItemInObject(d, "type", cJSON_CreateString("aws-dynamodb-kro-v2"));
        } else if (what == 4) {
            cJSON_AddItemToArray(list, cJSON_Duplicate(d, 1)); // twice
        }
        cJSON_AddItemToArray(list, d);
        if (rand() % 8 == 0)
            cJSON_AddItemToArray(list, random_component(pool));
    }
    // Shuffled (Fisher-Yates over the detached items).
    int n = cJSON_GetArraySize(list);
    cJSON **items = calloc((size_t)n + 1, sizeof *items);
    for (int i = n - 1; i >= 0; i--)
        items[i] = cJSON_DetachItemFromArray(list, i);
    for (int i = n - 1; i > 0; i--) {
        int k = rand() % (i + 1);
        cJSON *t = items[i];
        items[i] = items[k];
        items[k] = t;
    }
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(list, items[i]);
    free(items);
    return list;
}

static bool
same_place(const struct transition_slot *a, const struct transition_slot *b)
{
    return strcmp(a->name, b->name) == 0 &&
           strcmp(a->kind ? a->kind->kind : "", b->kind ? b->kind->kind : "") == 0 &&
           strcmp(a->object_name, b->object_name) == 0;
}

// The pairing as its definition reads, one linear search per table: the first slot of object
// (in component order) at the same place; else the first holding the same table at a place
// oldObject did not have.
static void
pair_plainly(const cJSON *now_app, const struct transition_slots *old,
             const struct transition_slots *now, struct transition_change *want)
{
    for (size_t i = 0; i < old->count; i++) {
        const struct transition_slot *o = &old->items[i], *n = NULL;
        want[i] = (struct transition_change){o, NULL, 0, TRANSITION_NOT_KEPT, NULL};
        for (size_t j = 0; j < now->count && n == NULL; j++)
            if (same_place(o, &now->items[j]))
                n = &now->items[j];
        if (n != NULL) {
            want[i].now = n;
            want[i].kind = strcmp(o->type, n->type) != 0     ? POLICY_REMOVE
                           : strcmp(o->table, n->table) != 0 ? POLICY_RENAME
                                                             : 0;
            continue;
        }
        for (size_t j = 0; j < now->count && n == NULL; j++) {
            bool was_there = false;
            for (size_t k = 0; k < old->count && !was_there; k++)
                was_there = same_place(&now->items[j], &old->items[k]);
            if (!was_there && strcmp(now->items[j].table, o->table) == 0)
                n = &now->items[j];
        }
        want[i].now = n;
        want[i].kind = n != NULL ? POLICY_RENAME : POLICY_REMOVE;
        if (n == NULL && o->object == NULL) {
            const cJSON *c;
            cJSON_ArrayForEach(
                c, cJSON_GetObjectItem(cJSON_GetObjectItem(now_app, "spec"), "components"))
            {
                const cJSON *name = cJSON_GetObjectItem(c, "name");
                if (cJSON_IsString(name) && strcmp(name->valuestring, o->name) == 0) {
                    const cJSON *type = cJSON_GetObjectItem(c, "type");
                    want[i].new_type = cJSON_IsString(type) ? type->valuestring : NULL;
                    break;
                }
            }
        }
    }
}

static void
many_tables_pair_as_the_plain_search_does(void **state)
{
    (void)state;
    struct policy *p = load();
    srand(17);
    for (int round = 0; round < 300; round++) {
        int count = 1 + rand() % (round < 200 ? 40 : 600);
        int pool = 1 + count / (1 + rand() % 3); // small pools: many duplicates
        cJSON *list = cJSON_CreateArray();
        for (int i = 0; i < count; i++)
            cJSON_AddItemToArray(list, random_component(pool));
        cJSON *old = application_of(list);
        cJSON *now = application_of(changed(list, pool));
        struct transition_slots os, ns;
        transition_slots(policy_spec(p), old, &os);
        transition_slots(policy_spec(p), now, &ns);
        struct transition_change *got = calloc(os.count + 1, sizeof *got);
        struct transition_change *want = calloc(os.count + 1, sizeof *want);
        bool *paired = calloc(ns.count + 1, sizeof *paired);
        transition_compare(old, &os, now, &ns, got, paired);
        pair_plainly(now, &os, &ns, want);
        size_t renamed = 0, removed = 0;
        for (size_t i = 0; i < os.count; i++) {
            assert_ptr_equal(got[i].old, &os.items[i]);
            assert_ptr_equal(got[i].now, want[i].now);
            assert_int_equal(got[i].kind, want[i].kind);
            if (want[i].new_type == NULL)
                assert_null(got[i].new_type);
            else
                assert_string_equal(got[i].new_type, want[i].new_type);
            renamed += got[i].kind == POLICY_RENAME;
            removed += got[i].kind == POLICY_REMOVE;
        }
        for (size_t j = 0; j < ns.count; j++) {
            bool any = false;
            for (size_t i = 0; i < os.count; i++)
                any |= want[i].now == &ns.items[j];
            assert_int_equal(paired[j], any);
        }
        if (round == 299) // the rounds do reach every kind of change
            assert_true(renamed > 0 && removed > 0);
        free(got);
        free(want);
        free(paired);
        transition_slots_free(&os);
        transition_slots_free(&ns);
        cJSON_Delete(old);
        cJSON_Delete(now);
    }
    policy_unref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pairs_by_component_then_by_table),
        cmocka_unit_test(keep_rules_hold_before_and_after),
        cmocka_unit_test(guarded_objects_and_bad_shapes),
        cmocka_unit_test(many_tables_pair_as_the_plain_search_does),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

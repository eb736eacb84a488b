// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy/patch: JSON Pointer escaping and applying "add" operations.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/patch.h"

static void
escapes_tilde_and_slash(void **state)
{
    (void)state;
    struct patch_path p = {0};
    patch_path_push(&p, "spec");
    patch_path_push(&p, "a/b~c");
    patch_path_push_index(&p, 12);
    patch_path_push(&p, "-");
    assert_string_equal(p.buf, "/spec/a~1b~0c/12/-");
    size_t keep = strlen("/spec");
    patch_path_truncate(&p, keep);
    assert_string_equal(p.buf, "/spec");
    patch_path_free(&p);
}

static cJSON *
parse(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    return j;
}

static void
applies_adds_to_objects_and_arrays(void **state)
{
    (void)state;
    cJSON *doc = parse("{\"a~b\":{\"list\":[1,2]},\"x/y\":{}}");
    cJSON *ops = cJSON_CreateArray();
    patch_add(ops, "/a~0b/list/-", cJSON_CreateNumber(3));
    patch_add(ops, "/a~0b/list/0", cJSON_CreateNumber(0));
    patch_add(ops, "/x~1y/k", cJSON_CreateTrue());
    char err[128];
    assert_int_equal(patch_apply(doc, ops, err, sizeof err), 0);
    char *out = cJSON_PrintUnformatted(doc);
    assert_string_equal(out, "{\"a~b\":{\"list\":[0,1,2,3]},\"x/y\":{\"k\":true}}");
    free(out);
    cJSON_Delete(ops);
    cJSON_Delete(doc);
}

static void
refuses_missing_parents_and_other_ops(void **state)
{
    (void)state;
    cJSON *doc = parse("{\"a\":1}");
    char err[128];
    cJSON *ops = parse("[{\"op\":\"add\",\"path\":\"/missing/x\",\"value\":1}]");
    assert_int_equal(patch_apply(doc, ops, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not exist"));
    cJSON_Delete(ops);
    ops = parse("[{\"op\":\"remove\",\"path\":\"/a\"}]");
    assert_int_equal(patch_apply(doc, ops, err, sizeof err), -1);
    cJSON_Delete(ops);
    ops = parse("[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]");
    assert_int_equal(patch_apply(doc, ops, err, sizeof err), -1);
    cJSON_Delete(ops);
    cJSON_Delete(doc);
}

static void
resolves_array_indexes_in_any_order_and_after_insertions(void **state)
{
    (void)state;
    // Operations walk forward, back, through an insertion and a replaced array: the shortcut
    // that keeps in-order operations linear must never resolve a stale element.
    cJSON *doc = parse("{\"c\":[{\"n\":0},{\"n\":1},{\"n\":2},{\"n\":3}],\"d\":[{}]}");
    cJSON *ops = cJSON_CreateArray();
    patch_add(ops, "/c/1/a", cJSON_CreateNumber(1));
    patch_add(ops, "/c/3/a", cJSON_CreateNumber(3));
    patch_add(ops, "/c/0/a", cJSON_CreateNumber(0));
    patch_add(ops, "/c/2/a", cJSON_CreateNumber(2));
    patch_add(ops, "/c/1", cJSON_CreateString("new"));
    patch_add(ops, "/c/3/b", cJSON_CreateTrue());
    patch_add(ops, "/d/0/x", cJSON_CreateNumber(9));
    patch_add(ops, "/d", cJSON_Parse("[{},{}]"));
    patch_add(ops, "/d/1/y", cJSON_CreateNumber(8));
    char err[128];
    assert_int_equal(patch_apply(doc, ops, err, sizeof err), 0);
    char *out = cJSON_PrintUnformatted(doc);
    assert_string_equal(out, "{\"c\":[{\"n\":0,\"a\":0},\"new\",{\"n\":1,\"a\":1},{\"n\":2,"
                             "\"a\":2,\"b\":true},{\"n\":3,\"a\":3}],\"d\":[{},{\"y\":8}]}");
    free(out);
    cJSON_Delete(ops);
    cJSON_Delete(doc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(escapes_tilde_and_slash),
        cmocka_unit_test(applies_adds_to_objects_and_arrays),
        cmocka_unit_test(refuses_missing_parents_and_other_ops),
        cmocka_unit_test(resolves_array_indexes_in_any_order_and_after_insertions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

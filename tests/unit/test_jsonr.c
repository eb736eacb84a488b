// SPDX-License-Identifier: Apache-2.0
// Unit tests for util/jsonr: json_get finds what cJSON_GetObjectItemCaseSensitive finds, and
// json_str what cJSON_GetStringValue of it gives, for every key of every tree tried.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "util/jsonr.h"

// Keys that share first bytes, differ only late, are empty, are prefixes of one another, or
// start with bytes outside ASCII.
static const char *const KEYS[] = {
    "",
    "a",
    "ab",
    "abc",
    "b",
    "name",
    "namespace",
    "n",
    "metadata",
    "managedFields",
    "A",
    "1",
    "q", // 'q' and '1' agree in their low six bits
    "\xc3\xa9",
    "\xc3\xa8",
    "\xc3\xa9t\xc3\xa9",
    "requestKind",
    "requestResource",
    "resource",
};
enum { NKEYS = sizeof KEYS / sizeof KEYS[0] };

static void
assert_same_lookup(const cJSON *o, const char *key)
{
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(o, key);
    const cJSON *got = json_get(o, key);
    if (got != want)
        fail_msg("key \"%s\": json_get %p, cJSON %p", key ? key : "(null)", (const void *)got,
                 (const void *)want);
    assert_ptr_equal(json_str(o, key), cJSON_GetStringValue(want));
}

// A random object (or, one time in six, an array or a scalar) whose members repeat keys at
// random: the first of equal keys is the one both lookups must return.
static cJSON *
random_container(void)
{
    int what = rand() % 6;
    if (what == 0)
        return cJSON_CreateString("s");
    cJSON *c = what == 1 ? cJSON_CreateArray() : cJSON_CreateObject();
    int n = rand() % 12;
    for (int i = 0; i < n; i++) {
        cJSON *v = rand() % 2 ? cJSON_CreateString(KEYS[rand() % NKEYS])
                              : cJSON_CreateNumber(rand() % 100);
        if (what == 1)
            cJSON_AddItemToArray(c, v);
        else
            cJSON_AddItemToObject(c, KEYS[rand() % NKEYS], v);
    }
    return c;
}

static void
json_get_finds_what_cjson_finds(void **state)
{
    (void)state;
    srand(23);
    for (int round = 0; round < 5000; round++) {
        cJSON *o = random_container();
        for (size_t k = 0; k < NKEYS; k++)
            assert_same_lookup(o, KEYS[k]);
        assert_same_lookup(o, "absent");
        assert_same_lookup(o, NULL);
        cJSON_Delete(o);
    }
    assert_same_lookup(NULL, "a");
    assert_null(json_get(NULL, NULL));
}

// The first of two equal keys wins; a later one is never returned.
static void
json_get_returns_the_first_of_equal_keys(void **state)
{
    (void)state;
    cJSON *o = cJSON_Parse("{\"name\":1,\"namespace\":\"x\",\"name\":\"two\",\"\":3,\"\":4}");
    assert_non_null(o);
    const cJSON *first = o->child;
    assert_ptr_equal(json_get(o, "name"), first);
    assert_int_equal(json_get(o, "name")->valueint, 1);
    assert_null(json_str(o, "name")); // the first is a number, though a later one is a string
    assert_string_equal(json_str(o, "namespace"), "x");
    assert_int_equal(json_get(o, "")->valueint, 3);
    assert_null(json_get(o, "nam"));
    assert_null(json_get(o, "names"));
    cJSON_Delete(o);
}

// A member without a key (an item added to an object as to an array) ends the walk for both:
// what follows it is not found.
static void
json_get_stops_where_cjson_stops(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "a", 1);
    cJSON_AddItemToArray(o, cJSON_CreateNumber(2));
    cJSON_AddNumberToObject(o, "b", 3);
    assert_non_null(json_get(o, "a"));
    assert_null(json_get(o, "b"));
    assert_same_lookup(o, "b");
    assert_same_lookup(o, "");
    cJSON_Delete(o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_get_finds_what_cjson_finds),
        cmocka_unit_test(json_get_returns_the_first_of_equal_keys),
        cmocka_unit_test(json_get_stops_where_cjson_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

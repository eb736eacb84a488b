// SPDX-License-Identifier: Apache-2.0
// Unit tests for server/unheld: the stand-in review made from the first bytes of a body the
// server could not hold, wherever those bytes end, and the `timeout` argument's seconds.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "server/review.h"
#include "server/unheld.h"

// The start of an UPDATE as the API server writes it, object cut short.
static const char REVIEW[] =
    "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{"
    "\"uid\":\"705ab4f5-6393-11e8-b7cc-42010a800002\","
    "\"kind\":{\"group\":\"core.oam.dev\",\"version\":\"v1beta1\",\"kind\":\"Application\"},"
    "\"resource\":{\"group\":\"core.oam.dev\",\"version\":\"v1beta1\",\"resource\":"
    "\"applications\"},\"name\":\"orders\",\"namespace\":\"shop\",\"operation\":\"UPDATE\","
    "\"userInfo\":{\"username\":\"alice\",\"groups\":[\"dev\",\"system:authenticated\"]},"
    "\"object\":{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\",\"metadata\":"
    "{\"name\":\"orders\",\"annotations\":{\"note\":\"\\u003c\\u003e\\u0026 and more [{,\"";

static cJSON *
stand_in(const char *s, size_t n)
{
    size_t len;
    char err[160] = "";
    char *text = unheld_review(s, n, &len, err, sizeof err);
    if (text == NULL)
        return NULL;
    assert_int_equal(strlen(text), len);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static const char *
str(const cJSON *o, const char *path)
{
    char key[64];
    const char *dot;
    while ((dot = strchr(path, '.')) != NULL) {
        memcpy(key, path, (size_t)(dot - path));
        key[dot - path] = '\0';
        o = cJSON_GetObjectItemCaseSensitive(o, key);
        path = dot + 1;
    }
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, path));
}

static void
stand_in_keeps_the_request_and_stubs_both_objects(void **state)
{
    (void)state;
    cJSON *j = stand_in(REVIEW, sizeof REVIEW - 1);
    assert_non_null(j);
    assert_string_equal(str(j, "request.uid"), "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_string_equal(str(j, "request.operation"), "UPDATE");
    assert_string_equal(str(j, "request.resource.resource"), "applications");
    assert_string_equal(str(j, "request.userInfo.username"), "alice");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(
                             cJSON_GetObjectItemCaseSensitive(j, "request"), "userInfo"),
                         "groups")),
                     2);
    // The object is a stub of the request's kind and name, and so is oldObject on an UPDATE.
    assert_string_equal(str(j, "request.object.apiVersion"), "core.oam.dev/v1beta1");
    assert_string_equal(str(j, "request.object.kind"), "Application");
    assert_string_equal(str(j, "request.object.metadata.name"), "orders");
    assert_string_equal(str(j, "request.oldObject.kind"), "Application");
    assert_null(str(j, "request.object.spec"));
    cJSON_Delete(j);
}

// Wherever the bytes end, the stand-in either carries the uid or is not made; from the end of
// userInfo on it is always made.
static void
every_cut_gives_the_uid_or_nothing(void **state)
{
    (void)state;
    size_t complete = (size_t)(strstr(REVIEW, ",\"object\"") - REVIEW);
    for (size_t n = 0; n <= sizeof REVIEW - 1; n++) {
        cJSON *j = stand_in(REVIEW, n);
        if (n >= complete)
            assert_non_null(j);
        if (j != NULL)
            assert_string_equal(str(j, "request.uid"), "705ab4f5-6393-11e8-b7cc-42010a800002");
        cJSON_Delete(j);
    }
}

static void
not_a_review_is_refused_with_a_reason(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "xxxxxxxxxxxxxxxxxxxx",
        "[1,2,3,[4,",
        "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{"
        "\"uid\":\"a\\u0000b\",\"operation\":\"CREATE\",\"object\":{\"x\":",
        "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{"
        "\"uid\":\"a\",\"uid\":\"b\",\"operation\":\"CREATE\",\"object\":{\"x\":",
        "}}}}{\"kind\":",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len;
        char err[160] = "";
        char *text = unheld_review(bad[i], strlen(bad[i]), &len, err, sizeof err);
        assert_null(text);
        assert_true(err[0] != '\0');
    }
}

// Containers past the depth the cut looks into are dropped whole, however deep they go.
static void
deep_object_is_dropped(void **state)
{
    (void)state;
    size_t head = (size_t)(strstr(REVIEW, "\"annotations\"") - REVIEW);
    size_t n = head + 100000;
    char *s = malloc(n);
    memcpy(s, REVIEW, head);
    memcpy(s + head, "\"deep\":", 7);
    memset(s + head + 7, '[', n - head - 7);
    s[head + 7 + 40] = ':'; // not even JSON past the depth: never read
    cJSON *j = stand_in(s, n);
    assert_non_null(j);
    assert_string_equal(str(j, "request.name"), "orders");
    cJSON_Delete(j);
    free(s);
}

static void
timeout_is_whole_seconds_only(void **state)
{
    (void)state;
    assert_int_equal(unheld_timeout("10s"), 10);
    assert_int_equal(unheld_timeout("5s"), 5);
    assert_int_equal(unheld_timeout("9999s"), 9999);
    assert_int_equal(unheld_timeout(NULL), 0);
    assert_int_equal(unheld_timeout(""), 0);
    assert_int_equal(unheld_timeout("s"), 0);
    assert_int_equal(unheld_timeout("10"), 0);
    assert_int_equal(unheld_timeout("1m30s"), 0);
    assert_int_equal(unheld_timeout("10000s"), 0);
    assert_int_equal(unheld_timeout("-5s"), 0);
    assert_int_equal(unheld_timeout("5ss"), 0);
}

int
main(void)
{
    review_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stand_in_keeps_the_request_and_stubs_both_objects),
        cmocka_unit_test(every_cut_gives_the_uid_or_nothing),
        cmocka_unit_test(not_a_review_is_refused_with_a_reason),
        cmocka_unit_test(deep_object_is_dropped),
        cmocka_unit_test(timeout_is_whole_seconds_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

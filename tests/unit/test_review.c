// SPDX-License-Identifier: Apache-2.0
// Unit tests for server/review: what counts as an AdmissionReview v1 request, and the response.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "server/review.h"

#define HEAD "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","

static int
decode(const char *body, size_t len, char *err)
{
    struct review_request req;
    int rc = review_decode(body, len, &req, err, 160);
    review_request_free(&req);
    return rc;
}

static void
accepts_a_minimal_review(void **state)
{
    (void)state;
    const char *body = HEAD "\"request\":{\"uid\":\"u1\",\"operation\":\"CREATE\","
                            "\"userInfo\":{\"username\":\"bob\",\"groups\":[\"g1\",\"g2\"]},"
                            "\"object\":{\"metadata\":{\"namespace\":\"ns1\"}},"
                            "\"oldObject\":null,\"dryRun\":true}}";
    struct review_request req;
    char err[160];
    assert_int_equal(review_decode(body, strlen(body), &req, err, sizeof err), 0);
    assert_string_equal(req.uid, "u1");
    assert_string_equal(req.operation, "CREATE");
    assert_string_equal(req.username, "bob");
    assert_int_equal(req.group_count, 2);
    assert_string_equal(req.groups[1], "g2");
    assert_true(req.dry_run);
    assert_string_equal(req.namespace, "ns1"); // from the object when the request has none
    assert_string_equal(req.name, "");
    review_request_free(&req);
}

static void
rejects_what_the_api_server_never_sends(void **state)
{
    (void)state;
    char err[160];
    const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\","
        "\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\"}}",
        HEAD "\"request\":null}",
        HEAD "\"request\":{\"operation\":\"CREATE\"}}",
        HEAD "\"request\":{\"uid\":\"\",\"operation\":\"CREATE\"}}",
        HEAD "\"request\":{\"uid\":\"u\",\"operation\":\"PATCH\"}}",
        HEAD "\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\",\"dryRun\":\"yes\"}}",
        HEAD "\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\",\"namespace\":3}}",
        HEAD "\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\",\"userInfo\":{\"groups\":[1]}}}",
        HEAD "\"request\":{\"uid\":\"u\",\"uid\":\"v\",\"operation\":\"CREATE\"}}",
        HEAD "\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\",\"object\":{\"a\":1,\"a\":2}}}",
        HEAD "\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\"}} trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (decode(bad[i], strlen(bad[i]), err) != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_true(strlen(err) > 0);
    }
    const char nul[] = HEAD "\"request\":{\"uid\":\"u\0\",\"operation\":\"CREATE\"}}";
    assert_int_equal(decode(nul, sizeof nul - 1, err), -1);
    const char utf8[] = HEAD "\"request\":{\"uid\":\"\xc3\x28\",\"operation\":\"CREATE\"}}";
    assert_int_equal(decode(utf8, sizeof utf8 - 1, err), -1);
    assert_non_null(strstr(err, "UTF-8"));
}

static void
rejects_deep_nesting(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *body = malloc(2 * depth + 1);
    memset(body, '[', depth);
    memset(body + depth, ']', depth);
    body[2 * depth] = '\0';
    char err[160];
    assert_int_equal(decode(body, 2 * depth, err), -1);
    free(body);
}

static void
encodes_allow_with_patch_and_deny(void **state)
{
    (void)state;
    cJSON *ops = cJSON_Parse("[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}]");
    char *warnings[] = {"w1"};
    struct review_response r = {.uid = "u1",
                                .allowed = true,
                                .patch = ops,
                                .warnings = warnings,
                                .warning_count = 1,
                                .audit_decision = "patch",
                                .audit_rules = "r1,r2"};
    size_t len;
    char *out = review_encode(&r, &len);
    cJSON *j = cJSON_Parse(out);
    assert_string_equal(cJSON_GetObjectItem(j, "apiVersion")->valuestring, "admission.k8s.io/v1");
    assert_string_equal(cJSON_GetObjectItem(j, "kind")->valuestring, "AdmissionReview");
    cJSON *resp = cJSON_GetObjectItem(j, "response");
    assert_string_equal(cJSON_GetObjectItem(resp, "uid")->valuestring, "u1");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(resp, "allowed")));
    assert_string_equal(cJSON_GetObjectItem(resp, "patchType")->valuestring, "JSONPatch");
    const char *b64 = cJSON_GetObjectItem(resp, "patch")->valuestring;
    unsigned char raw[256];
    int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
    assert_true(n > 0);
    while (n > 0 && raw[n - 1] == '\0') // EVP_DecodeBlock counts padding as zero bytes
        n--;
    raw[n] = '\0';
    assert_string_equal((char *)raw, "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}]");
    assert_null(cJSON_GetObjectItem(resp, "status"));
    cJSON *ann = cJSON_GetObjectItem(resp, "auditAnnotations");
    assert_string_equal(cJSON_GetObjectItem(ann, "rules")->valuestring, "r1,r2");
    cJSON_Delete(j);
    free(out);

    struct review_response d = {
        .uid = "u2", .allowed = false, .message = "no", .audit_decision = "deny"};
    out = review_encode(&d, &len);
    j = cJSON_Parse(out);
    resp = cJSON_GetObjectItem(j, "response");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(resp, "allowed")));
    cJSON *st = cJSON_GetObjectItem(resp, "status");
    assert_int_equal(cJSON_GetObjectItem(st, "code")->valueint, 403);
    assert_string_equal(cJSON_GetObjectItem(st, "reason")->valuestring, "Forbidden");
    assert_string_equal(cJSON_GetObjectItem(st, "message")->valuestring, "no");
    assert_null(cJSON_GetObjectItem(resp, "patch"));
    assert_null(cJSON_GetObjectItem(resp, "patchType"));
    cJSON_Delete(j);
    free(out);
    cJSON_Delete(ops);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_a_minimal_review),
        cmocka_unit_test(rejects_what_the_api_server_never_sends),
        cmocka_unit_test(rejects_deep_nesting),
        cmocka_unit_test(encodes_allow_with_patch_and_deny),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

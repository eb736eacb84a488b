// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for patch building and applying: the input is request.object of a review;
// every operation eval_mutate builds must be an "add" whose RFC 6901 path resolves strictly and
// never overwrites a value, the patch must apply, and a second pass must find nothing to add.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/eval.h"
#include "policy/patch.h"
#include "policy/policy.h"
#include "tests/fuzz/fuzz_util.h"
#include "util/xalloc.h"
#include "server/review.h"

static const char POLICY[] = "apiVersion: tableguard.io/v1\n"
                             "kind: ProtectionPolicy\n"
                             "metadata:\n"
                             "  name: fuzz\n"
                             "spec:\n"
                             "  components:\n"
                             "    types: [aws-dynamodb-kro, \"ack-*\"]\n"
                             "  trait:\n"
                             "    type: dynamodb-protection-kro\n"
                             "    defaults:\n"
                             "      deletionProtection: true\n"
                             "      pointInTimeRecovery: false\n"
                             "  rules:\n"
                             "    - name: prod\n"
                             "      tables: [\"*-prod\"]\n"
                             "      require:\n"
                             "        deletionProtection: true\n"
                             "      action: deny\n";

// Decodes the next reference token of a JSON Pointer (RFC 6901): only "~0" and "~1" escapes.
static const char *
token(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && *s != '/'; s++) {
        char c = *s;
        if (c == '~') {
            check(s[1] == '0' || s[1] == '1');
            c = *++s == '0' ? '~' : '/';
        }
        check(n + 1 < cap);
        out[n++] = c;
    }
    out[n] = '\0';
    return s;
}

// An array index per RFC 6901: "0" or digits without a leading zero.
static long
index_of(const char *t)
{
    check(t[0] != '\0' && (t[0] != '0' || t[1] == '\0'));
    long v = 0;
    for (const char *c = t; *c; c++) {
        check(*c >= '0' && *c <= '9' && v < 100000000);
        v = v * 10 + (*c - '0');
    }
    return v;
}

// Checks that an "add" at `path` is valid in `doc` and never replaces a value other than null
// (RFC 6902 "add" on an existing member replaces it; an explicit value must never be).
static void
check_path(const cJSON *doc, const char *path)
{
    check(strncmp(path, "/spec/components/", 17) == 0);
    const cJSON *parent = doc;
    char t[4096];
    const char *s = path;
    for (;;) {
        check(*s == '/');
        s = token(s + 1, t, sizeof t);
        if (*s == '\0')
            break;
        if (cJSON_IsArray(parent)) {
            long i = index_of(t);
            check(i < cJSON_GetArraySize(parent));
            parent = cJSON_GetArrayItem(parent, (int)i);
        } else {
            check(cJSON_IsObject(parent));
            parent = cJSON_GetObjectItemCaseSensitive(parent, t);
        }
        check(parent != NULL);
    }
    if (cJSON_IsArray(parent)) {
        check(strcmp(t, "-") == 0 || index_of(t) == cJSON_GetArraySize(parent));
    } else {
        check(cJSON_IsObject(parent));
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(parent, t);
        check(old == NULL || cJSON_IsNull(old));
    }
}

static cJSON *
mutate(const struct policy *policy, const cJSON *obj)
{
    struct eval_input in = {.object = obj, .namespace = "shop", .username = "alice"};
    struct eval_result ev;
    eval_mutate(policy, &in, &ev);
    cJSON *p = ev.patch;
    ev.patch = NULL;
    eval_result_free(&ev);
    return p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    review_init(); // cheap, and what main does before serving
    const struct policy *policy = policy_once(POLICY, sizeof POLICY - 1);
    // The object travels inside a review, so it passes the decoder's checks (UTF-8, no NUL,
    // no duplicate keys, nesting) exactly as on the server.
    static const char head[] =
        "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
        "\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\",\"object\":";
    size_t len = sizeof head - 1 + size + 2;
    char *body = xmalloc(len);
    memcpy(body, head, sizeof head - 1);
    memcpy(body + sizeof head - 1, data, size);
    memcpy(body + sizeof head - 1 + size, "}}", 2);
    struct review_request req;
    char err[160];
    if (review_decode(body, len, &req, err, sizeof err) != 0 || req.object == NULL) {
        review_request_free(&req);
        free(body);
        return 0;
    }
    cJSON *doc = cJSON_Duplicate(req.object, 1);
    check(doc != NULL);
    review_request_free(&req);
    free(body);

    cJSON *ops = mutate(policy, doc);
    const cJSON *op;
    cJSON_ArrayForEach(op, ops)
    {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(op, "op");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(op, "path");
        check(cJSON_IsString(kind) && strcmp(kind->valuestring, "add") == 0);
        check(cJSON_IsString(path) && cJSON_GetObjectItemCaseSensitive(op, "value") != NULL);
        check_path(doc, path->valuestring);
        // Apply one at a time so each later path is checked against the document it meets.
        cJSON *one = cJSON_CreateArray();
        cJSON_AddItemToArray(one, cJSON_Duplicate(op, 1));
        check(patch_apply(doc, one, err, sizeof err) == 0);
        cJSON_Delete(one);
    }
    // Reinvocation: the API server may call the webhook again on the mutated object.
    cJSON *again = mutate(policy, doc);
    check(again == NULL || cJSON_GetArraySize(again) == 0);
    cJSON_Delete(again);
    cJSON_Delete(ops);
    cJSON_Delete(doc);
    return 0;
}

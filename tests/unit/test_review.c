// SPDX-License-Identifier: Apache-2.0
// Unit tests for server/review: what counts as an AdmissionReview v1 request, and the response.
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
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

// A review nested `levels` containers deep in all: the document, request and object, then
// arrays inside the object. The caller frees it.
static char *
nested_review(size_t levels)
{
    static const char head[] =
        HEAD "\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\",\"object\":{\"a\":";
    size_t arrays = levels - 3, n = strlen(head);
    char *body = malloc(n + 2 * arrays + 4);
    memcpy(body, head, n);
    memset(body + n, '[', arrays);
    memset(body + n + arrays, ']', arrays);
    strcpy(body + n + 2 * arrays, "}}}");
    return body;
}

// The decoder holds a review nested exactly as deep as the API server's decoder does (10 002
// levels, the object's parts flattened past cJSON's 1000) and refuses the same review one level
// deeper, and a bare 100 000 '[' which the shape check would also refuse, with the nesting
// limit's own message, so the refusal is the nesting limit and not the shape check.
static void
rejects_deep_nesting(void **state)
{
    (void)state;
    char err[160] = "";
    char *at_limit = nested_review(10002);
    if (decode(at_limit, strlen(at_limit), err) != 0)
        fail_msg("a review 10002 levels deep was refused: %s", err);
    free(at_limit);
    char *body = nested_review(10003);
    assert_int_equal(decode(body, strlen(body), err), -1);
    assert_string_equal(err, "body nests 10003 levels deep, more than the 10002 the API server "
                             "reads");
    free(body);
    size_t depth = 100000;
    body = malloc(2 * depth + 1);
    memset(body, '[', depth);
    memset(body + depth, ']', depth);
    body[2 * depth] = '\0';
    assert_int_equal(decode(body, 2 * depth, err), -1);
    assert_string_equal(err, "body nests 100000 levels deep, more than the 10002 the API server "
                             "reads");
    free(body);
}

// A review of `obj`, in a buffer the caller frees.
static char *
review_of(const char *uid, const char *obj)
{
    size_t n = strlen(uid) + strlen(obj) + 256;
    char *b = malloc(n);
    snprintf(b, n, HEAD "\"request\":{\"uid\":\"%s\",\"operation\":\"CREATE\",\"object\":%s}}", uid,
             obj);
    return b;
}

// An escaped NUL anywhere but the uid is a review still: it decodes, says where the NUL is, and
// keys that differ only after a NUL stay different keys.
static void
decodes_escaped_nul_and_says_where(void **state)
{
    (void)state;
    char err[160];
    struct review_request req;
    char *body = review_of(
        "u1", "{\"kind\":\"Application\",\"spec\":{\"components\":[{\"properties\":"
              "{\"tableName\":\"orders\\u0000-prod\",\"a\\u0000x\":1,\"a\\u0000y\":2}}]}}");
    assert_int_equal(review_decode(body, strlen(body), &req, err, sizeof err), 0);
    assert_string_equal(req.uid, "u1");
    assert_non_null(req.unreadable);
    assert_non_null(strstr(req.unreadable, "request.object.spec.components[0].properties."
                                           "tableName holds an escaped NUL character (\\u0000)"));
    review_request_free(&req);
    free(body);

    // The NUL in a key: the path shows it.
    body = review_of("u1", "{\"metadata\":{\"annotations\":{\"no\\u0000te\":\"x\"}}}");
    assert_int_equal(review_decode(body, strlen(body), &req, err, sizeof err), 0);
    assert_non_null(strstr(req.unreadable, "request.object.metadata.annotations.no\\u0000te "));
    review_request_free(&req);
    free(body);

    // U+FDD0, the marker, raw and escaped in the uid beside a NUL elsewhere: the uid is echoed
    // exactly as sent.
    body = review_of("a\xEF\xB7\x90-\\uFDD0-\\ufdd1", "{\"x\":\"\\u0000\"}");
    assert_int_equal(review_decode(body, strlen(body), &req, err, sizeof err), 0);
    assert_string_equal(req.uid, "a\xEF\xB7\x90-\xEF\xB7\x90-\xEF\xB7\x91");
    assert_non_null(strstr(req.unreadable, "request.object.x holds"));
    review_request_free(&req);
    free(body);

    // Without a NUL nothing is marked or unreadable.
    body = review_of("u\xEF\xB7\x90", "{\"x\":\"\\\\u0000\"}");
    assert_int_equal(review_decode(body, strlen(body), &req, err, sizeof err), 0);
    assert_string_equal(req.uid, "u\xEF\xB7\x90");
    assert_null(req.unreadable);
    review_request_free(&req);
    free(body);

    // A duplicate key is still one when both copies hold the same NUL.
    body = review_of("u1", "{\"a\\u0000\":1,\"a\\u0000\":2}");
    assert_int_equal(decode(body, strlen(body), err), -1);
    assert_non_null(strstr(err, "duplicate"));
    free(body);
}

// An escaped NUL is found wherever it sits in the body: random strings of escapes (an escaped
// backslash before "u0000" is not one) at every offset, against the escapes read left to right.
static void
escaped_nul_found_at_any_offset(void **state)
{
    (void)state;
    static const char *const pieces[] = {"a",       "\\\\", "\\u0000", "u0000",  "\\\"",
                                         "\\u0041", "\\n",  "0",       "\\u0030"};
    srand(17);
    int found = 0, rounds = 20000;
    for (int round = 0; round < rounds; round++) {
        char text[512] = "";
        for (int k = rand() % 12; k > 0; k--)
            strcat(text, pieces[(size_t)rand() % (sizeof pieces / sizeof *pieces)]);
        char *obj = malloc(strlen(text) + 64);
        sprintf(obj, "{\"pad\":\"%.*s\",\"v\":\"%s\"}", rand() % 40,
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", text);
        bool has_nul = false;
        for (const char *p = text; *p; p++) {
            if (p[0] == '\\' && p[1] == 'u' && strncmp(p + 2, "0000", 4) == 0) {
                has_nul = true;
                break;
            }
            if (p[0] == '\\')
                p++; // the escaped character is not the start of another escape
        }
        char *body = review_of("u1", obj), err[160];
        struct review_request req;
        assert_int_equal(review_decode(body, strlen(body), &req, err, sizeof err), 0);
        if (has_nul != (req.unreadable != NULL))
            fail_msg("round %d: %s: unreadable %s", round, text,
                     req.unreadable ? req.unreadable : "none");
        found += has_nul;
        review_request_free(&req);
        free(body);
        free(obj);
    }
    assert_true(found > rounds / 10 && found < rounds * 9 / 10);
}

// The UTF-8 check reads runs of ASCII 32 and 8 bytes at a time: against a plain byte-by-byte
// reading of RFC 3629 on random texts, with invalid sequences at every offset.
static bool
utf8_plain(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : 3;
        if (c < 0xC2 || c > 0xF4 || i + need >= n)
            return false;
        unsigned long cp = need == 1 ? c & 0x1Fu : need == 2 ? c & 0x0Fu : c & 0x07u;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += need + 1;
    }
    return true;
}

static void
utf8_check_matches_the_plain_one(void **state)
{
    (void)state;
    static const char *const good[] = {"a",
                                       "abcdefghijklmnopqrstuvwxyz0123456789",
                                       "\xc3\xa9",
                                       "\xe2\x82\xac",
                                       "\xf0\x9f\x98\x80",
                                       "\x7f"};
    static const char *const bad[] = {"\xc3",    "\xed\xa0\x80", "\xc0\x80", "\xf4\x90\x80\x80",
                                      "\xff",    "\x80",         "\xe2\x82", "\xe0\x80\x80",
                                      "\xf5\x80"};
    srand(17);
    int valid = 0, rounds = 50000;
    for (int round = 0; round < rounds; round++) {
        char text[2048];
        size_t n = 0;
        for (int k = rand() % 40; k > 0; k--) {
            const char *piece = rand() % 60 == 0
                                    ? bad[(size_t)rand() % (sizeof bad / sizeof *bad)]
                                    : good[(size_t)rand() % (sizeof good / sizeof *good)];
            memcpy(text + n, piece, strlen(piece));
            n += strlen(piece);
        }
        bool want = utf8_plain((const unsigned char *)text, n);
        if (review_utf8_valid(text, n) != want)
            fail_msg("round %d: plain says %d", round, want);
        valid += want;
    }
    assert_true(valid > rounds / 10 && valid < rounds * 9 / 10);
}

// `depth` nested arrays around `inner`, in a buffer the caller frees.
static char *
nest(size_t depth, const char *inner)
{
    size_t n = strlen(inner);
    char *b = malloc(2 * depth + n + 1);
    memset(b, '[', depth);
    memcpy(b + depth, inner, n);
    memset(b + depth + n, ']', depth);
    b[2 * depth + n] = '\0';
    return b;
}

// Nesting past cJSON's 1000 levels, up to what the API server's decoder holds, decodes with the
// deep containers as null and a reason; the deep parts are still checked as JSON.
static void
decodes_nesting_deeper_than_cjson_holds(void **state)
{
    (void)state;
    char err[160];
    struct review_request req;
    const char *inners[] = {"1", "{\"a\":[1,2,{\"b\":null}]}", "1,]", "{\"a\":1,\"a\":2}", "tru"};
    const int ok[] = {1, 1, 0, 0, 0};
    for (size_t k = 0; k < 5; k++) {
        for (size_t depth = 998; depth <= 9000; depth += depth < 1010 ? 1 : 3997) {
            char *deep = nest(depth, inners[k]);
            size_t dn = strlen(deep) + 64;
            char *obj = malloc(dn);
            snprintf(obj, dn, "{\"kind\":\"Application\",\"spec\":%s}", deep);
            char *body = review_of("u1", obj);
            int rc = review_decode(body, strlen(body), &req, err, sizeof err);
            // root, request, object, spec: the arrays start at level 4.
            bool past = depth + 3 > 1000;
            if (!ok[k] && past) {
                assert_int_equal(rc, -1);
            } else if (ok[k]) {
                if (rc != 0)
                    fail_msg("%zu deep around %s: %s", depth, inners[k], err);
                assert_string_equal(req.uid, "u1");
                assert_string_equal(cJSON_GetObjectItem(req.object, "kind")->valuestring,
                                    "Application");
                assert_true((req.unreadable != NULL) == past);
                if (past)
                    assert_non_null(strstr(req.unreadable, "nests deeper than the 1000 levels"));
            }
            review_request_free(&req);
            free(body);
            free(obj);
            free(deep);
        }
    }
    // The API server's decoder holds an object 10 000 levels deep; one more is not a review it
    // sends, nor are unbalanced brackets.
    char *deep = nest(10000, "1");
    char *body = review_of("u1", deep);
    assert_int_equal(decode(body, strlen(body), err), 0);
    free(body);
    free(deep);
    deep = nest(10001, "1");
    body = review_of("u1", deep);
    assert_int_equal(decode(body, strlen(body), err), -1);
    assert_non_null(strstr(err, "more than the 10002"));
    free(body);
    free(deep);
    deep = nest(5000, "1");
    deep[strlen(deep) - 1] = ' ';
    body = review_of("u1", deep);
    assert_int_equal(decode(body, strlen(body), err), -1);
    free(body);
    free(deep);
    // Trailing data after a deep document.
    deep = nest(5000, "1");
    body = review_of("u1", deep);
    size_t bn = strlen(body);
    body = realloc(body, bn + 3);
    memcpy(body + bn, " x", 3);
    assert_int_equal(decode(body, bn + 2, err), -1);
    free(body);
    free(deep);
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

// The answer as cJSON prints the same members (the encoder's former way): the reference the
// direct encoder must match byte for byte.
static char *
encode_with_cjson(const struct review_response *r, const char *b64)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "apiVersion", "admission.k8s.io/v1");
    cJSON_AddStringToObject(root, "kind", "AdmissionReview");
    cJSON *resp = cJSON_AddObjectToObject(root, "response");
    cJSON_AddStringToObject(resp, "uid", r->uid);
    cJSON_AddBoolToObject(resp, "allowed", r->allowed);
    if (b64 != NULL) {
        cJSON_AddStringToObject(resp, "patchType", "JSONPatch");
        cJSON_AddStringToObject(resp, "patch", b64);
    }
    if (!r->allowed) {
        cJSON *st = cJSON_AddObjectToObject(resp, "status");
        cJSON_AddNumberToObject(st, "code", 403);
        cJSON_AddStringToObject(st, "reason", "Forbidden");
        cJSON_AddStringToObject(st, "message", r->message ? r->message : "denied");
    }
    if (r->warning_count > 0) {
        cJSON *w = cJSON_AddArrayToObject(resp, "warnings");
        for (size_t i = 0; i < r->warning_count; i++)
            cJSON_AddItemToArray(w, cJSON_CreateString(r->warnings[i]));
    }
    cJSON *ann = cJSON_AddObjectToObject(resp, "auditAnnotations");
    cJSON_AddStringToObject(ann, "decision", r->audit_decision);
    if (r->audit_patched)
        cJSON_AddStringToObject(ann, "patched", "true");
    if (r->audit_request_uid != NULL)
        cJSON_AddStringToObject(ann, "request-uid", r->audit_request_uid);
    if (r->audit_rules != NULL && r->audit_rules[0] != '\0')
        cJSON_AddStringToObject(ann, "rules", r->audit_rules);
    if (r->audit_exceptions != NULL && r->audit_exceptions[0] != '\0')
        cJSON_AddStringToObject(ann, "exceptions", r->audit_exceptions);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static unsigned long enc_rng = 99;

// A string of up to 12 bytes from every kind the escaper treats apart: control characters
// (short and \u escapes), quote, backslash, slash, DEL, UTF-8, plain letters; sometimes empty.
static void
random_field(char *out)
{
    static const char pool[] = "\x01\x08\x09\x0a\x0c\x0d\x1f\"\\/\x7f\xc3\xa9"
                               "ab Z";
    enc_rng = enc_rng * 6364136223846793005ul + 1442695040888963407ul;
    size_t n = (enc_rng >> 33) % 13;
    for (size_t i = 0; i < n; i++) {
        enc_rng = enc_rng * 6364136223846793005ul + 1442695040888963407ul;
        out[i] = pool[(enc_rng >> 33) % (sizeof pool - 1)];
    }
    out[n] = '\0';
}

// The answer is the same bytes cJSON printed, for every combination of members and strings
// needing every kind of escape.
static void
encodes_the_bytes_cjson_printed(void **state)
{
    (void)state;
    char f[8][16];
    cJSON *ops = cJSON_Parse("[{\"op\":\"add\",\"path\":\"/a~1b\",\"value\":\"x\\u0001\"}]");
    char *ops_text = cJSON_PrintUnformatted(ops);
    unsigned char b64[256];
    EVP_EncodeBlock(b64, (const unsigned char *)ops_text, (int)strlen(ops_text));
    for (int round = 0; round < 4000; round++) {
        for (int k = 0; k < 8; k++)
            random_field(f[k]);
        char *warnings[3] = {f[3], f[4], f[5]};
        struct review_response r = {
            .uid = f[0],
            .allowed = round & 1,
            .patch = round & 2 ? ops : NULL,
            .patch_json = round & 4 ? ops_text : NULL,
            .message = round & 8 ? f[1] : NULL,
            .warnings = warnings,
            .warning_count = (size_t)(round >> 4) % 4,
            .audit_decision = f[2],
            .audit_rules = round & 64 ? f[6] : NULL,
            .audit_request_uid = round & 128 ? f[0] : NULL,
            .audit_patched = round & 256,
            .audit_exceptions = round & 512 ? f[7] : NULL,
        };
        size_t len;
        char *got = review_encode(&r, &len);
        char *want = encode_with_cjson(&r, round & 6 ? (const char *)b64 : NULL);
        assert_string_equal(got, want);
        assert_int_equal(len, strlen(want));
        free(got);
        cJSON_free(want);
    }
    cJSON_free(ops_text);
    cJSON_Delete(ops);
}

// The byte checks read the body eight bytes at a time where it is plain ASCII: each finding
// must hold at every alignment, including backslash runs that cross an eight-byte boundary.
static void
byte_checks_hold_at_every_alignment(void **state)
{
    (void)state;
    char body[512], err[160];
    for (int pad = 0; pad < 17; pad++) {
        for (int run = 1; run <= 4; run++) {
            // "uid":"<pad a's><run backslashes>u0000x": an escaped NUL when the run is odd.
            int n = snprintf(body, sizeof body,
                             HEAD "\"request\":{\"uid\":\"%.*s%.*su0000x\","
                                  "\"operation\":\"CREATE\"}}",
                             pad, "aaaaaaaaaaaaaaaaa", run, "\\\\\\\\");
            int rc = decode(body, (size_t)n, err);
            if (run % 2 == 1) {
                assert_int_equal(rc, -1);
                assert_non_null(strstr(err, "escaped NUL"));
            } else {
                if (rc != 0)
                    fail_msg("pad %d run %d: %s", pad, run, err);
            }
        }
        // A raw NUL, an invalid UTF-8 byte, a truncated and a valid multi-byte sequence.
        const char *cases[][2] = {
            {"\x01\x00", "NUL"}, {"\xff", "UTF-8"}, {"\xe2\x82", "UTF-8"}, {"\xe2\x82\xac", NULL}};
        for (size_t k = 0; k < 4; k++) {
            size_t cl = strlen(cases[k][0]) + (k == 0);
            int h = snprintf(body, sizeof body, HEAD "\"request\":{\"uid\":\"%.*s", pad,
                             "aaaaaaaaaaaaaaaaa");
            memcpy(body + h, cases[k][0], cl);
            int t = snprintf(body + h + cl, sizeof body - (size_t)h - cl,
                             "\",\"operation\":\"CREATE\"}}");
            int rc = decode(body, (size_t)h + cl + (size_t)t, err);
            if (cases[k][1] == NULL) {
                if (rc != 0)
                    fail_msg("pad %d case %zu: %s", pad, k, err);
            } else {
                assert_int_equal(rc, -1);
                if (strstr(err, cases[k][1]) == NULL)
                    fail_msg("pad %d case %zu: %s", pad, k, err);
            }
        }
    }
}

// A random value: objects of up to 40 members with keys from a small pool (so that some repeat),
// arrays, strings and numbers, `depth` levels at most.
static cJSON *
random_value(int depth)
{
    int what = depth > 0 ? rand() % 4 : 2 + rand() % 2;
    if (what == 0 || what == 1) {
        cJSON *c = what == 0 ? cJSON_CreateObject() : cJSON_CreateArray();
        int n = rand() % 8 == 0 ? 17 + rand() % 24 : rand() % 6;
        for (int i = 0; i < n; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", rand() % (n < 6 ? 12 : 400));
            if (what == 0)
                cJSON_AddItemToObject(c, key, random_value(depth - 1));
            else
                cJSON_AddItemToArray(c, random_value(depth - 1));
        }
        return c;
    }
    return what == 2 ? cJSON_CreateString("v") : cJSON_CreateNumber(rand() % 10);
}

static bool
repeats_plainly(const cJSON *v)
{
    for (const cJSON *c = v->child; c != NULL; c = c->next) {
        if (cJSON_IsObject(v))
            for (const cJSON *d = c->next; d != NULL; d = d->next)
                if (strcmp(c->string, d->string) == 0)
                    return true;
        if (repeats_plainly(c))
            return true;
    }
    return false;
}

// Decodes a review of `object`: it must be refused for a duplicate key when `dup`, and decode
// otherwise. `what` and `at` name the case in a failure.
static void
assert_duplicate_found_iff(const char *object, bool dup, const char *what, int at)
{
    char *body = review_of("u", object), err[160];
    int rc = decode(body, strlen(body), err);
    if (dup ? rc != -1 || strstr(err, "duplicate") == NULL : rc != 0)
        fail_msg("%s %d: rc %d (%s), expected %s: %s", what, at, rc, rc ? err : "",
                 dup ? "a duplicate" : "none", object);
    free(body);
}

static void
duplicate_keys_are_found_at_any_depth(void **state)
{
    (void)state;
    srand(17);
    int dups = 0, rounds = 3000;
    for (int round = 0; round < rounds; round++) {
        cJSON *object = random_value(1 + rand() % 5);
        char *text = cJSON_PrintUnformatted(object);
        bool want = repeats_plainly(object);
        assert_duplicate_found_iff(text, want, "round", round);
        dups += want;
        cJSON_free(text);
        cJSON_Delete(object);
    }
    assert_true(dups > rounds / 10 && dups < rounds * 9 / 10);
}

// Keys whose first bytes repeat, agree in their low six bits ('q' and '1', 'a' and '!'), are
// empty, are prefixes of one another or are outside ASCII.
static const char *const DUP_KEYS[] = {
    "",     "a",         "ab", "!",      "b",      "ba",      "q",           "1",
    "name", "namespace", "A",  "\u00e9", "\u00e8", "\u00e9t", "requestKind", "requestResource"};

// A random object of up to 20 members with keys from DUP_KEYS (so that some repeat), as text.
static void
random_object_text(char *out, size_t cap, int depth, bool *dup)
{
    size_t n = (size_t)(rand() % 21), len = 0;
    bool used[sizeof DUP_KEYS / sizeof DUP_KEYS[0]] = {false};
    len += (size_t)snprintf(out + len, cap - len, "{");
    for (size_t i = 0; i < n && len + 64 < cap; i++) {
        size_t k = (size_t)rand() % (sizeof DUP_KEYS / sizeof DUP_KEYS[0]);
        *dup = *dup || used[k];
        used[k] = true;
        len += (size_t)snprintf(out + len, cap - len, "%s\"%s\":", i ? "," : "", DUP_KEYS[k]);
        if (depth > 0 && rand() % 4 == 0)
            random_object_text(out + len, cap - len, depth - 1, dup);
        else
            snprintf(out + len, cap - len, "%d", rand() % 9);
        len += strlen(out + len);
    }
    snprintf(out + len, cap - len, "}");
}

static void
duplicate_keys_are_found_whatever_their_first_bytes(void **state)
{
    (void)state;
    srand(29);
    int dups = 0, rounds = 3000;
    for (int round = 0; round < rounds; round++) {
        static char object[1 << 16];
        bool want = false;
        random_object_text(object, sizeof object, 3, &want);
        assert_duplicate_found_iff(object, want, "round", round);
        dups += want;
    }
    assert_true(dups > rounds / 10 && dups < rounds * 9 / 10);
}

// The check follows any nesting cJSON holds: a duplicate at the bottom of 40 to 900 levels of
// objects and arrays is found, and none is made up.
static void
duplicate_keys_are_found_under_deep_nesting(void **state)
{
    (void)state;
    static const int depths[] = {40, 63, 64, 65, 127, 128, 129, 500, 900};
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
        for (int dup = 0; dup < 2; dup++) {
            size_t cap = (size_t)depths[d] * 16 + 512, len = 0;
            char *object = malloc(cap);
            for (int i = 0; i < depths[d]; i++)
                len += (size_t)snprintf(object + len, cap - len, i % 2 ? "[1," : "{\"x\":0,\"k\":");
            len +=
                (size_t)snprintf(object + len, cap - len, dup ? "{\"z\":1,\"z\":2}" : "{\"z\":1}");
            for (int i = depths[d] - 1; i >= 0; i--)
                len += (size_t)snprintf(object + len, cap - len, i % 2 ? "]" : "}");
            assert_duplicate_found_iff(object, dup, "depth", depths[d]);
            free(object);
        }
    }
}

// A small body of many values takes several times the first arena chunk (16 KiB for a body
// under 4 KiB): every value still reads back as sent.
static void
decodes_a_small_body_of_many_values(void **state)
{
    (void)state;
    enum { N = 1900 };
    size_t cap = 2 * N + 256, len = 0;
    char *body = malloc(cap), err[160];
    len += (size_t)snprintf(body, cap,
                            HEAD "\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\","
                                 "\"object\":[");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s%d", i ? "," : "", i % 10);
    len += (size_t)snprintf(body + len, cap - len, "]}}");
    assert_true(len < 4096);
    struct review_request req;
    assert_int_equal(review_decode(body, len, &req, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(req.object), N);
    int i = 0;
    for (const cJSON *v = req.object->child; v != NULL; v = v->next, i++)
        assert_int_equal(v->valueint, i % 10);
    assert_int_equal(i, N);
    assert_string_equal(req.uid, "u");
    review_request_free(&req);
    free(body);
}

int
main(void)
{
    review_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_a_minimal_review),
        cmocka_unit_test(rejects_what_the_api_server_never_sends),
        cmocka_unit_test(rejects_deep_nesting),
        cmocka_unit_test(decodes_escaped_nul_and_says_where),
        cmocka_unit_test(escaped_nul_found_at_any_offset),
        cmocka_unit_test(utf8_check_matches_the_plain_one),
        cmocka_unit_test(decodes_nesting_deeper_than_cjson_holds),
        cmocka_unit_test(encodes_allow_with_patch_and_deny),
        cmocka_unit_test(encodes_the_bytes_cjson_printed),
        cmocka_unit_test(byte_checks_hold_at_every_alignment),
        cmocka_unit_test(duplicate_keys_are_found_at_any_depth),
        cmocka_unit_test(duplicate_keys_are_found_whatever_their_first_bytes),
        cmocka_unit_test(duplicate_keys_are_found_under_deep_nesting),
        cmocka_unit_test(decodes_a_small_body_of_many_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

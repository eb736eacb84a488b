// SPDX-License-Identifier: Apache-2.0
// Unit tests for server/recview: the writer's lines are scanned without a tree, every other line
// goes to cJSON, and both ways read the same record or fail with the same message.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/admit.h"
#include "server/audit.h"
#include "server/recview.h"
#include "server/review.h"
#include "tests/unit/minimal_policy.h"
#include "tests/unit/tmpdir.h"

#define HASH_TAIL ",\"hash\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}"
#define PREV "\"prev\":\"e5d8eb13c87cff43c44ae9c3c9931c0be6ae6bb5bbd5bdd6b6dd02da7ac2522b\""

// A decision record as the server writes it (schema 2, a table row, a patch), without its hash.
#define WRITTEN                                                                                    \
    "{\"time\":\"2026-11-29T03:50:29.537Z\",\"seq\":2,\"replica\":\"vm\",\"event\":\"decision\","  \
    "\"schema\":2,\"uid\":\"d167a683-4628-4e82-bd95-376b9a5aaebe\",\"webhook\":\"mutate\","        \
    "\"operation\":\"CREATE\",\"dryRun\":false,\"user\":{\"username\":\"carol@example.com\","      \
    "\"groups\":[\"system:authenticated\"]},\"resource\":{\"group\":\"core.oam.dev\",\"version\":" \
    "\"v1beta1\",\"resource\":\"applications\",\"namespace\":\"shop\",\"name\":\"orders\"},"       \
    "\"decision\":\"patch\",\"code\":200,\"rules\":[],\"tables\":[{\"component\":\"orders\","      \
    "\"table\":\"orders-prod\",\"profile\":\"production\",\"before\":{\"deletionProtection\":"     \
    "null,"                                                                                        \
    "\"pointInTimeRecovery\":null},\"after\":{\"deletionProtection\":true,"                        \
    "\"pointInTimeRecovery\":"                                                                     \
    "true},\"transition\":null,\"exception\":null,\"rules\":[]}],\"patch\":[{\"op\":\"add\","      \
    "\"path\":\"/spec/components/0/traits\",\"value\":[{\"type\":\"dynamodb-protection-kro\","     \
    "\"properties\":{\"deletionProtection\":true,\"pointInTimeRecovery\":true}}]}],\"policy\":"    \
    "{\"name\":\"default\",\"sha256\":\"18dce03e477850935c05e80e1cec03342fb855a773eaf31182ffa378"  \
    "248facb4\"}," PREV "}"

#define DEEP10 "[[[[[[[[[["
#define DEEP70                                                                                     \
    DEEP10 DEEP10 DEEP10 DEEP10 DEEP10 DEEP10 DEEP10 "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"         \
                                                     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"

// The start of a decision record, for variations.
#define HEAD "{\"time\":\"2025-06-01T10:00:00Z\",\"seq\":7,\"event\":\"decision\","

static struct recview *fast, *tree;

static int
setup(void **state)
{
    (void)state;
    fast = recview_new();
    tree = recview_new();
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    recview_free(fast);
    recview_free(tree);
    return 0;
}

// Reads a whole line (n bytes, without its newline) both ways; checks that they agree and that
// the scanner read it (or left it to cJSON) as expected. Returns the scanner's record, NULL when
// both failed; err gets the message.
static const struct recview_record *
read_both(const char *line, size_t n, bool scanned, struct chain_record *p, char *err,
          size_t errlen)
{
    static char a[16384], b[16384];
    char eb[256] = "";
    size_t la = 0, lb = 0;
    assert_true(n < sizeof(a));
    memcpy(a, line, n);
    memcpy(b, line, n);
    struct chain_record pb;
    err[0] = '\0';
    const struct recview_record *ra = recview_read(fast, a, n, false, p, &la, err, errlen);
    const struct recview_record *rb = recview_read(tree, b, n, true, &pb, &lb, eb, sizeof eb);
    assert_string_equal(err, eb);
    if (ra == NULL) {
        assert_null(rb);
        return NULL;
    }
    assert_non_null(rb);
    assert_int_equal(la, lb);
    assert_memory_equal(p, &pb, sizeof pb);
    assert_true(recview_equal(ra, rb));
    if (ra->scanned != scanned)
        fail_msg("%s by cJSON: %.*s", scanned ? "read" : "not read", (int)n, line);
    return ra;
}

// read_both for body, a record without its hash member.
static const struct recview_record *
both(const char *body, bool scanned, struct chain_record *p, char *err, size_t errlen)
{
    static char line[8192];
    size_t n = strlen(body);
    assert_true(n > 1 && n + sizeof(HASH_TAIL) < sizeof(line));
    // The hash member replaces the closing brace, as the writer appends it.
    memcpy(line, body, n - 1);
    memcpy(line + n - 1, HASH_TAIL, sizeof(HASH_TAIL));
    return read_both(line, strlen(line), scanned, p, err, errlen);
}

static void
the_writers_lines_are_scanned(void **state)
{
    (void)state;
    struct chain_record p;
    char err[256];
    const struct recview_record *r = both(WRITTEN, true, &p, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(p.seq, 2);
    assert_string_equal(p.event, "decision");
    assert_string_equal(r->username, "carol@example.com");
    assert_string_equal(r->namespace, "shop");
    assert_string_equal(r->decision, "patch");
    assert_true(r->has_code && r->code == 200);
    assert_int_equal(r->dry_run, RECVIEW_FALSE);
    assert_true(r->tables_array);
    assert_int_equal(r->nrows, 1);
    assert_string_equal(r->rows[0].table, "orders-prod");
    assert_null(r->rows[0].old_table);
    assert_null(r->rows[0].transition);
    assert_int_equal(r->rows[0].before[0].kind, RECVIEW_NONE);
    assert_int_equal(r->rows[0].after[1].kind, RECVIEW_TRUE);

    // And every line of the golden log, written by an independent writer after docs/audit.md.
    FILE *f = fopen("tests/cases/audit-tamper/good/audit.log", "rb");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0, lines = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        // Back to the body: the hash member (as long as HASH_TAIL) and the newline cut off.
        ssize_t tail = (ssize_t)strlen(HASH_TAIL);
        assert_true(n > tail + 2);
        line[n - 1 - tail] = '}';
        line[n - tail] = '\0';
        assert_non_null(both(line, true, &p, err, sizeof err));
        lines++;
    }
    free(line);
    fclose(f);
    assert_true(lines >= 8);
}

// The traits of the table component in review_body: none, protection off, protection on.
#define TRAIT(dp)                                                                                  \
    ",\"traits\":[{\"type\":\"dynamodb-protection-kro\",\"properties\":{"                          \
    "\"deletionProtection\":" dp ",\"pointInTimeRecovery\":true}}]"
static const char *const TRAITS[] = {"", TRAIT("false"), TRAIT("true")};

// An AdmissionReview of an Application with one table whose component has traits.
static void
review_body(char *out, size_t len, const char *operation, const char *traits)
{
    snprintf(out, len,
             "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
             "\"request\":{\"uid\":\"uid-1\",\"operation\":\"%s\","
             "\"resource\":{\"group\":\"core.oam.dev\",\"version\":\"v1beta1\","
             "\"resource\":\"applications\"},\"name\":\"orders\",\"namespace\":\"shop\","
             "\"userInfo\":{\"username\":\"al\\\"ice\",\"groups\":[\"dev\"]},"
             "\"object\":{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\","
             "\"metadata\":{\"name\":\"orders\",\"namespace\":\"shop\"},"
             "\"spec\":{\"components\":[{\"name\":\"orders-table\",\"type\":"
             "\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"orders-prod\"}%s}]}},"
             "\"oldObject\":null,\"dryRun\":false}}",
             operation, traits);
}

// The records the server writes today, built and appended as it does (admit, then the audit
// writer), are all scanned without a tree: a change to the writer that would send every line to
// cJSON fails here.
static void
the_servers_records_are_scanned(void **state)
{
    (void)state;
    char dir[] = "/tmp/tg-recview-XXXXXX", path[64], err[256] = "", body[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/audit.log", dir);
    struct policy *pol = load();
    struct audit_options o = {.path = path, .sync = AUDIT_SYNC_NONE, .replica = "tableguard-0"};
    struct audit *a = audit_open(&o, err, sizeof err);
    assert_non_null(a);
    for (int w = 0; w < 2; w++)
        for (size_t i = 0; i < 3; i++) {
            struct admit_result res;
            review_body(body, sizeof body, "CREATE", TRAITS[i]);
            admit_handle(pol, w ? ADMIT_VALIDATE : ADMIT_MUTATE, body, strlen(body), true, &res);
            assert_non_null(res.record.buf);
            assert_int_equal(
                audit_append_text(a, res.record.buf, res.record.len, NULL, err, sizeof err), 0);
            admit_result_free(&res);
        }
    audit_close(a);
    policy_unref(pol);

    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0, lines = 0, patched = 0;
    ssize_t n;
    struct chain_record p;
    while ((n = getline(&line, &cap, f)) > 0) {
        const struct recview_record *r = read_both(line, (size_t)n - 1, true, &p, err, sizeof err);
        assert_non_null(r);
        if (strcmp(p.event, "decision") == 0) {
            assert_string_equal(r->username, "al\"ice");
            assert_int_equal(r->nrows, 1);
            assert_string_equal(r->rows[0].table, "orders-prod");
            patched += r->decision != NULL && strcmp(r->decision, "patch") == 0;
        }
        lines++;
    }
    free(line);
    fclose(f);
    assert_int_equal(lines, 8); // start, six decisions, stop
    assert_true(patched > 0);
    assert_int_equal(tmpdir_remove(dir), 0);
}

static void
escapes_are_decoded_as_cjson_decodes_them(void **state)
{
    (void)state;
    struct chain_record p;
    char err[256];
    const struct recview_record *r = both(
        HEAD "\"user\":{\"username\":\"al\\\"ice\\u00e9\\u4E2d\\n\\/\\\\\"},\"rules\":[{\"name\":"
             "\"r\\t1\",\"table\":\"orders-\\u0070rod\",\"message\":\"say \\\"hi\\\"\"}]," PREV "}",
        true, &p, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(r->username, "al\"ice\xc3\xa9\xe4\xb8\xad\n/\\");
    assert_int_equal(r->nhits, 1);
    assert_string_equal(r->hits[0].name, "r\t1");
    assert_string_equal(r->hits[0].table, "orders-prod");
    assert_false(r->tables_array);
}

static void
a_duplicated_key_reads_as_its_first(void **state)
{
    (void)state;
    struct chain_record p;
    char err[256];
    const struct recview_record *r = both(
        HEAD "\"decision\":\"allow\",\"user\":{\"username\":\"alice\",\"username\":\"mallory\"},"
             "\"tables\":[{\"table\":\"a-prod\",\"table\":\"b-dev\"}],\"decision\":\"deny\","
             "\"tables\":[],\"code\":\"x\",\"code\":403,\"event\":\"stop\"," PREV
             ",\"prev\":\"short\",\"seq\":8}",
        true, &p, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(r->decision, "allow");
    assert_string_equal(r->username, "alice");
    assert_int_equal(r->nrows, 1);
    assert_string_equal(r->rows[0].table, "a-prod");
    assert_false(r->has_code); // the first "code" is a string
    assert_string_equal(p.event, "decision");
    assert_int_equal(p.seq, 7);
}

static void
other_lines_go_to_cjson_and_read_the_same(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "{ \"seq\":7," PREV "}",        // whitespace
        HEAD "\"code\":2e2," PREV "}",  // a number read that is not an integer
        HEAD "\"code\":0200," PREV "}", // a leading zero
        "{\"time\":\"t\",\"seq\":7,\"event\":\"decision\\u0000x\"," PREV "}", // NUL cuts the event
        HEAD "\"user\":{\"username\":\"\\ud83d\\ude00\"}," PREV "}",          // a surrogate pair
        HEAD "\"tables\":{\"a\":{\"table\":\"x-prod\",\"transition\":\"t\"}}," PREV "}",
        HEAD "\"rules\":{\"r\":{\"table\":\"x-prod\"}}," PREV "}",
        HEAD PREV "} trailing}",               // cJSON stops at the first object's end
        HEAD "\"ti\\u006de\":\"x\"," PREV "}", // an escaped key
        HEAD "\"deep\":" DEEP70 "," PREV "}",  // nesting past the scanner's limit
        HEAD "\"uid\":\"a\tb\"," PREV "}",     // a raw control byte, which cJSON takes
        HEAD "\"n\":123456789012345678901234567890123," PREV "}",
    };
    struct chain_record p;
    char err[256];
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (both(lines[i], false, &p, err, sizeof err) == NULL)
            fail_msg("refused: %s: %s", lines[i], err);
    const struct recview_record *r = both(lines[3], false, &p, err, sizeof err);
    assert_string_equal(p.event, "decision");
    r = both(lines[5], false, &p, err, sizeof err);
    assert_false(r->tables_array);
    assert_int_equal(r->nrows, 1);
    assert_string_equal(r->rows[0].transition, "t");
}

static void
odd_members_read_as_cjson_reads_them(void **state)
{
    (void)state;
    struct chain_record p;
    char err[256];
    const struct recview_record *r =
        both(HEAD "\"tables\":[1,[],{\"before\":[],\"after\":\"x\",\"rules\":[1,\"a\",null]},"
                  "{\"before\":{\"deletionProtection\":\"yes\",\"pointInTimeRecovery\":3}}],"
                  "\"user\":[\"alice\"],\"resource\":\"shop\",\"dryRun\":null,\"code\":-0,"
                  "\"excluded\":{\"rules\":[{\"name\":\"e\",\"table\":\"t-prod\"},7]},"
                  "\"n\":[-0,0.5,1e10,-1.25E-3,{}]," PREV "}",
             true, &p, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(r->nrows, 4);
    assert_null(r->rows[0].table);
    assert_int_equal(r->rows[2].nrules, 1);
    assert_string_equal(r->rows[2].rules[0], "a");
    assert_int_equal(r->rows[3].before[0].kind, RECVIEW_STRING);
    assert_int_equal(r->rows[3].before[1].kind, RECVIEW_OTHER);
    assert_null(r->username);
    assert_null(r->namespace);
    assert_int_equal(r->dry_run, RECVIEW_NONE);
    assert_int_equal(r->nexcluded, 1);
    assert_true(r->has_code);
}

static void
bad_lines_fail_with_the_same_message(void **state)
{
    (void)state;
    static const char *const lines[] = {
        HEAD PREV ",}",
        HEAD "\"x\":[1,]," PREV "}",
        HEAD "\"x\":\"\\x\"," PREV "}",
        HEAD "\"x\":\"\\u12\"," PREV "}",
        HEAD "\"x\":\"\\udc00\"," PREV "}",
        HEAD "\"x\":tru," PREV "}",
        HEAD "\"x\":-," PREV "}",
        "{\"seq\":0," PREV "}",
        "{\"seq\":1.5," PREV "}",
        "{\"seq\":\"1\"," PREV "}",
        "{\"seq\":9007199254740994," PREV "}",
        "{\"seq\":1,\"prev\":\"abc\"}",
        "{\"seq\":1,\"prev\":\"E5D8EB13C87CFF43C44AE9C3C9931C0BE6AE6BB5BBD5BDD6B6DD02DA7AC2522B\"}",
        "{\"seq\":1}",
    };
    struct chain_record p;
    char err[256];
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (both(lines[i], false, &p, err, sizeof err) != NULL)
            fail_msg("accepted: %s", lines[i]);
        assert_non_null(strstr(err, "record is not a JSON object"));
    }
    char line[] = "{\"seq\":1}";
    size_t body;
    assert_null(recview_read(fast, line, strlen(line), false, &p, &body, err, sizeof err));
    assert_non_null(strstr(err, "does not end with a \"hash\" member"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_writers_lines_are_scanned),
        cmocka_unit_test(the_servers_records_are_scanned),
        cmocka_unit_test(escapes_are_decoded_as_cjson_decodes_them),
        cmocka_unit_test(a_duplicated_key_reads_as_its_first),
        cmocka_unit_test(other_lines_go_to_cjson_and_read_the_same),
        cmocka_unit_test(odd_members_read_as_cjson_reads_them),
        cmocka_unit_test(bad_lines_fail_with_the_same_message),
    };
    review_init();
    return cmocka_run_group_tests(tests, setup, teardown);
}

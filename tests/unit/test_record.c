// SPDX-License-Identifier: Apache-2.0
// Unit tests for server/record: the decision record written directly as text is what printing
// the same members with cJSON gives, for hostile strings too, with every member in its place.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "policy/eval.h"
#include "policy/exceptions.h"
#include "policy/policy.h"
#include "server/record.h"
#include "server/review.h"

static const char POLICY[] = "apiVersion: tableguard.io/v1\n"
                             "kind: ProtectionPolicy\n"
                             "metadata: {name: \"unit \\\"q\\\" \\\\ é\"}\n"
                             "spec:\n"
                             "  components: {types: [aws-dynamodb-kro]}\n"
                             "  trait:\n"
                             "    type: dynamodb-protection-kro\n"
                             "    defaults: {deletionProtection: true, pointInTimeRecovery: true}\n"
                             "  rules:\n"
                             "    - name: \"prod \\\"deletion\\\" protection\"\n"
                             "      tables: [\"*-prod\"]\n"
                             "      require: {deletionProtection: true}\n"
                             "      action: deny\n"
                             "    - name: pitr-é\n"
                             "      tables: [\"*\"]\n"
                             "      require: {pointInTimeRecovery: true}\n"
                             "      action: warn\n";

// Strings no request should hold but any may: quotes, backslashes, every kind of control
// character, DEL, non-ASCII text and bytes that are not UTF-8 (the decoder refuses those in a
// body; the writer must still copy them as cJSON would).
static const char *const HOSTILE[] = {
    "plain",
    "q\"uo\"te and back\\slash\\",
    "\x01\x02\x07\b\t\n\x0b\f\r\x0e\x1b\x1f end",
    "del \x7f and / slash",
    "é 表 😀 \xe2\x80\xa8 \xe2\x80\xa9",
    "\xff\xfe \x80 \xc3( \xed\xa0\x80",
    "",
    "</script><!-- \\u0000 -->",
};
#define NHOSTILE (sizeof HOSTILE / sizeof *HOSTILE)

// The policy every test reads, loaded once.
static struct policy *policy;

static int
setup(void **state)
{
    (void)state;
    struct diag d = {0};
    policy = policy_load_buffer(POLICY, sizeof POLICY - 1, "unit.yaml", &d);
    diag_print(&d, stderr);
    diag_free(&d);
    return policy == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    (void)state;
    policy_unref(policy);
    return 0;
}

// The text parses, and printing the parse again gives the same bytes: the record is what
// cJSON prints for these members. Returns the parse (the caller frees it).
static cJSON *
reads_back(const struct jsonw *w)
{
    assert_non_null(w->buf);
    assert_int_equal(strlen(w->buf), w->len);
    cJSON *r = cJSON_ParseWithLength(w->buf, w->len);
    assert_non_null(r);
    char *again = cJSON_PrintUnformatted(r);
    assert_string_equal(again, w->buf);
    free(again);
    return r;
}

static const char *
str_at(const cJSON *o, const char *path)
{
    char key[64];
    const cJSON *v = o;
    for (const char *p = path; v != NULL && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(key))
                             : cJSON_GetObjectItemCaseSensitive(v, key);
        p += n + (p[n] == '.');
    }
    if (!cJSON_IsString(v))
        fail_msg("no string at %s", path);
    return v->valuestring;
}

// The names of an object's members, in order, comma separated.
static void
member_names(const cJSON *o, char *out, size_t n)
{
    out[0] = '\0';
    for (const cJSON *m = o->child; m != NULL; m = m->next)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? "," : "", m->string);
}

// Every string of the record carries a hostile value; each reads back as it went in, and the
// members come in the documented order.
static void
hostile_strings_read_back_exactly(void **state)
{
    (void)state;
    const struct policy *p = policy;
    const struct policy_spec *spec = policy_spec(p);
    for (size_t h = 0; h < NHOSTILE; h++) {
        const char *s = HOSTILE[h];
        const char *groups[] = {s, "system:authenticated", s};
        struct review_request req = {.uid = s,
                                     .operation = "UPDATE",
                                     .namespace = s,
                                     .name = s,
                                     .username = s,
                                     .groups = groups,
                                     .group_count = 3,
                                     .dry_run = true,
                                     .group = s,
                                     .version = "v1beta1",
                                     .resource = "applications"};
        struct exception ex = {.name = (char *)s,
                               .ticket = (char *)s,
                               .approved_by = (char *)s,
                               .reason = (char *)s,
                               .expires_text = "2030-01-01T00:00:00Z"};
        struct eval_finding f[2] = {
            {.rule = &spec->rules[0],
             .component = (char *)s,
             .table = (char *)s,
             .message = (char *)s,
             .exception = &ex},
            {.rule = &spec->rules[1],
             .component = (char *)s,
             .table = (char *)s,
             .message = (char *)s},
        };
        struct eval_table t = {.component = (char *)s,
                               .table = (char *)s,
                               .old_table = (char *)s,
                               .profile = s,
                               .before = {1, -2},
                               .after = {0, -1},
                               .transition = "rename",
                               .exception = s};
        struct eval_result ev = {.findings = f, .finding_count = 2, .tables = &t, .table_count = 1};
        char patch[] = "[{\"op\":\"add\",\"path\":\"/a\",\"value\":\"x\\u0001\\\"\"}]";
        struct record_decision d = {.webhook = "validate",
                                    .decision = "deny",
                                    .code = 403,
                                    .req = &req,
                                    .ev = &ev,
                                    .patch_json = patch};
        struct jsonw w = {0};
        size_t code_at;
        record_write(&w, p, &d, &code_at);
        cJSON *r = reads_back(&w);
        char names[512];
        member_names(r, names, sizeof names);
        assert_string_equal(names, "schema,uid,webhook,operation,dryRun,user,resource,decision,"
                                   "code,rules,tables,patch,policy");
        const char *paths[] = {"uid",
                               "user.username",
                               "user.groups.0",
                               "user.groups.2",
                               "resource.group",
                               "resource.namespace",
                               "resource.name",
                               "rules.0.component",
                               "rules.0.table",
                               "rules.0.message",
                               "rules.0.exception.name",
                               "rules.0.exception.ticket",
                               "rules.0.exception.approvedBy",
                               "rules.1.message",
                               "tables.0.component",
                               "tables.0.table",
                               "tables.0.oldTable",
                               "tables.0.profile",
                               "tables.0.exception"};
        for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
            assert_string_equal(str_at(r, paths[i]), s);
        // A reason is recorded only when the exception gives one.
        const cJSON *exc = cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(r, "rules"), 0), "exception");
        if (s[0] != '\0')
            assert_string_equal(str_at(r, "rules.0.exception.reason"), s);
        else
            assert_null(cJSON_GetObjectItem(exc, "reason"));
        assert_string_equal(str_at(r, "user.groups.1"), "system:authenticated");
        assert_string_equal(str_at(r, "rules.0.name"), spec->rules[0].name);
        assert_string_equal(str_at(r, "tables.0.rules.1"), spec->rules[1].name);
        assert_string_equal(str_at(r, "tables.0.before.pointInTimeRecovery"), "invalid");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "tables"), 0), "before"),
            "deletionProtection")));
        assert_string_equal(str_at(r, "policy.name"), spec->name);
        assert_string_equal(str_at(r, "patch.0.value"), "x\x01\"");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "dryRun")));
        assert_int_equal(cJSON_GetObjectItem(r, "code")->valueint, 403);
        assert_int_equal(strncmp(w.buf + code_at, "403,", 4), 0);
        cJSON_Delete(r);

        // An answer replaced by an error: the code changes in place, the error comes last.
        record_mark_error(&w, code_at, 500, s);
        r = reads_back(&w);
        member_names(r, names, sizeof names);
        assert_string_equal(names, "schema,uid,webhook,operation,dryRun,user,resource,decision,"
                                   "code,rules,tables,patch,policy,error");
        assert_int_equal(cJSON_GetObjectItem(r, "code")->valueint, 500);
        assert_string_equal(str_at(r, "error"), s);
        cJSON_Delete(r);
        jsonw_free(&w);
    }
}

// Findings follow their tables; one out of component order is placed by search, after the run
// of its row. Absent values: null where a member may be null, "" where it is a string.
static void
findings_find_their_rows(void **state)
{
    (void)state;
    const struct policy *p = policy;
    const struct policy_spec *spec = policy_spec(p);
    const char *groups[] = {"g"};
    struct review_request req = {.uid = "u",
                                 .operation = "CREATE",
                                 .namespace = "",
                                 .name = "",
                                 .username = "",
                                 .groups = groups,
                                 .group_count = 1,
                                 .group = "",
                                 .version = "",
                                 .resource = ""};
    struct eval_finding f[3] = {
        {.rule = &spec->rules[0], .component = "a", .table = "ta", .message = "m0"},
        {.rule = &spec->rules[1], .component = "b", .table = "tb", .message = "m1"},
        {.rule = &spec->rules[1], .component = "a", .table = "ta", .message = "m2"},
    };
    struct eval_table t[3] = {
        {.component = "a", .table = "ta", .before = {-1, -1}, .after = {1, 1}},
        {.component = "b", .table = "tb", .before = {-1, -1}, .after = {0, 0}},
        {.component = "c",
         .table = NULL,
         .old_table = "tc",
         .before = {1, 1},
         .after = {-1, -1},
         .transition = "remove"},
    };
    struct eval_result ev = {
        .skip = EVAL_DELETING, .findings = f, .finding_count = 3, .tables = t, .table_count = 3};
    struct record_decision d = {
        .webhook = "mutate", .decision = "allow", .code = 200, .req = &req, .ev = &ev};
    struct jsonw w = {0};
    size_t code_at;
    record_write(&w, p, &d, &code_at);
    cJSON *r = reads_back(&w);
    assert_non_null(strstr(w.buf, "\"code\":200,\"skipped\":\"deleting\",\"rules\":[{"));
    assert_non_null(
        strstr(w.buf, "\"tables\":[{\"component\":\"a\",\"table\":\"ta\",\"profile\":null,"
                      "\"before\":{\"deletionProtection\":null,\"pointInTimeRecovery\":null},"
                      "\"after\":{\"deletionProtection\":true,\"pointInTimeRecovery\":true},"
                      "\"transition\":null,\"exception\":null,\"rules\":[\"prod \\\"deletion\\\" "
                      "protection\",\"pitr-é\"]},{\"component\":\"b\""));
    assert_non_null(strstr(w.buf, "{\"component\":\"c\",\"table\":null,\"oldTable\":\"tc\","));
    assert_non_null(strstr(w.buf, "\"transition\":\"remove\",\"exception\":null,\"rules\":[]}],"
                                  "\"patch\":[],\"policy\":{"));
    assert_string_equal(str_at(r, "resource.name"), "");
    cJSON_Delete(r);
    jsonw_free(&w);
}

int
main(void)
{
    review_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hostile_strings_read_back_exactly),
        cmocka_unit_test(findings_find_their_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

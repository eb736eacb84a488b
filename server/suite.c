// SPDX-License-Identifier: Apache-2.0
// `tableguard test`: runs the cases of a suite file through the simulated API server and compares
// each outcome with the case's expectations.
#include "server/suite.h"

#include <getopt.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"
#include "util/xalloc.h"
#include "util/jsonr.h"
#include "server/ciout.h"
#include "server/manifest.h"
#include "server/outflag.h"
#include "server/simulate.h"

struct suite {
    const char *path;
    struct exceptions *exceptions; // the suite's exceptions file, or NULL
    long long now;                 // the time they are judged at: the suite's "now", else the clock
    char *dir;                     // the suite file's directory: paths in it are relative to it
    cJSON *root;
    size_t passed, failed;
    cJSON *results; // with --output json|junit: one object per case run, else NULL (borrowed)
};

// A path in the suite, resolved against the suite's directory.
static char *
suite_path(const struct suite *s, const char *rel)
{
    return rel[0] == '/' ? xstrdup(rel) : xasprintf("%s/%s", s->dir, rel);
}

// Checks the keys of a suite mapping against the allowed ones; prints and returns -1 on a stray.
static int
keys_ok(const char *where, const cJSON *obj, const char *const *allowed, const char *expected)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, obj)
    {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], c->string) != 0)
            i++;
        if (allowed[i] == NULL) {
            fprintf(stderr, "%s: unknown key \"%s\" (expected %s)\n", where, c->string, expected);
            return -1;
        }
    }
    return 0;
}

// A manifest given inline (a mapping) or as a path to a file with exactly one document.
static cJSON *
suite_manifest(const struct suite *s, const cJSON *v, char *err, size_t errlen)
{
    if (cJSON_IsObject(v))
        return cJSON_Duplicate(v, 1);
    if (!cJSON_IsString(v)) {
        snprintf(err, errlen, "must be a mapping or a file path");
        return NULL;
    }
    char *path = suite_path(s, v->valuestring);
    cJSON *docs = manifest_load(path, err, errlen);
    free(path);
    if (docs == NULL)
        return NULL;
    cJSON *m = NULL;
    if (cJSON_GetArraySize(docs) != 1 || !cJSON_IsObject(cJSON_GetArrayItem(docs, 0)))
        snprintf(err, errlen, "%s: expected exactly one object, found %d documents", v->valuestring,
                 cJSON_GetArraySize(docs));
    else
        m = cJSON_DetachItemFromArray(docs, 0);
    cJSON_Delete(docs);
    return m;
}

// The first place where two JSON values differ, as a JSON Pointer, written to buf.
static bool
first_difference(const cJSON *a, const cJSON *b, char *buf, size_t len)
{
    if (cJSON_Compare(a, b, true))
        return false;
    size_t base = strlen(buf);
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, a)
        {
            snprintf(buf + base, len - base, "/%s", c->string);
            if (first_difference(c, cJSON_GetObjectItemCaseSensitive(b, c->string), buf, len))
                return true;
        }
        cJSON_ArrayForEach(c, b)
        {
            snprintf(buf + base, len - base, "/%s", c->string);
            if (cJSON_GetObjectItemCaseSensitive(a, c->string) == NULL)
                return true;
        }
    } else if (cJSON_IsArray(a) && cJSON_IsArray(b)) {
        int n = cJSON_GetArraySize(a), m = cJSON_GetArraySize(b);
        for (int i = 0; i < (n > m ? n : m); i++) {
            snprintf(buf + base, len - base, "/%d", i);
            if (first_difference(cJSON_GetArrayItem(a, i), cJSON_GetArrayItem(b, i), buf, len))
                return true;
        }
    }
    buf[base] = '\0';
    return true;
}

static char *
json_short(const cJSON *v)
{
    if (v == NULL)
        return xstrdup("(absent)");
    char *s = cJSON_PrintUnformatted(v);
    if (strlen(s) > 160)
        memcpy(s + 157, "...", 4);
    return s;
}

// The distinct rule names that fired, in order, as a JSON array of strings.
static cJSON *
fired_rules(const struct simulate_outcome *o)
{
    cJSON *names = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, o->rules)
    {
        const char *name = json_str(r, "name");
        bool seen = false;
        const cJSON *n;
        cJSON_ArrayForEach(n, names) seen |= strcmp(n->valuestring, name) == 0;
        if (!seen)
            cJSON_AddItemToArray(names, cJSON_CreateString(name));
    }
    return names;
}

static bool
same_name_set(const cJSON *want, const cJSON *got)
{
    if (cJSON_GetArraySize(want) != cJSON_GetArraySize(got))
        return false;
    const cJSON *w, *g;
    cJSON_ArrayForEach(w, want)
    {
        bool found = false;
        cJSON_ArrayForEach(g, got) found |=
            cJSON_IsString(w) && strcmp(w->valuestring, g->valuestring) == 0;
        if (!found)
            return false;
    }
    return true;
}

// Compares an outcome with a case's expect block; writes why it differs into why.
static bool
expect_met(const struct suite *s, const cJSON *expect, const struct simulate_outcome *o, char *why,
           size_t len)
{
    const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(expect, "allowed");
    if (cJSON_IsTrue(allowed) != o->allowed) {
        snprintf(why, len, "expected %s, got %s%s%.300s", o->allowed ? "denied" : "allowed",
                 o->allowed ? "allowed" : "denied", o->message ? ": " : "",
                 o->message ? o->message : "");
        return false;
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(expect, "rules");
    cJSON *fired = fired_rules(o);
    bool ok = rules == NULL || same_name_set(rules, fired);
    if (!ok) {
        char *want = json_short(rules), *got = json_short(fired);
        snprintf(why, len, "expected rules %s, got %s", want, got);
        free(want);
        free(got);
    }
    cJSON_Delete(fired);
    if (!ok)
        return false;
    const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(expect, "warnings");
    if (cJSON_IsNumber(warnings) && warnings->valuedouble != cJSON_GetArraySize(o->warnings)) {
        char *got = json_short(o->warnings);
        snprintf(why, len, "expected %d warnings, got %d: %s", warnings->valueint,
                 cJSON_GetArraySize(o->warnings), got);
        free(got);
        return false;
    }
    if (cJSON_IsArray(warnings) && !cJSON_Compare(warnings, o->warnings, true)) {
        char *want = json_short(warnings), *got = json_short(o->warnings);
        snprintf(why, len, "expected warnings %s, got %s", want, got);
        free(want);
        free(got);
        return false;
    }
    const char *message = json_str(expect, "message");
    if (message != NULL && (o->message == NULL || strstr(o->message, message) == NULL)) {
        snprintf(why, len, "expected the denial to contain \"%.100s\", got %.300s", message,
                 o->message ? o->message : "no denial");
        return false;
    }
    const cJSON *mutated = cJSON_GetObjectItemCaseSensitive(expect, "mutated");
    if (mutated != NULL) {
        char err[256] = "";
        cJSON *want = suite_manifest(s, mutated, err, sizeof err);
        if (want == NULL) {
            snprintf(why, len, "expect.mutated: %s", err);
            return false;
        }
        char at[512] = "";
        bool differs = first_difference(want, o->mutated, at, sizeof at);
        if (differs) {
            const cJSON *w = want, *g = o->mutated;
            // Walk both to the differing place to show the two values.
            char *save = NULL, *copy = xstrdup(at);
            for (char *tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
                w = cJSON_IsArray(w) ? cJSON_GetArrayItem(w, atoi(tok))
                                     : cJSON_GetObjectItemCaseSensitive(w, tok);
                g = cJSON_IsArray(g) ? cJSON_GetArrayItem(g, atoi(tok))
                                     : cJSON_GetObjectItemCaseSensitive(g, tok);
            }
            free(copy);
            char *ws = json_short(w), *gs = json_short(g);
            snprintf(why, len, "mutated manifest differs at %s: expected %s, got %s",
                     at[0] ? at : "/", ws, gs);
            free(ws);
            free(gs);
        }
        cJSON_Delete(want);
        if (differs)
            return false;
    }
    return true;
}

static const char *const CASE_KEYS[] = {"name", "description", "manifest", "operation", "namespace",
                                        "user", "groups",      "expect",   NULL};
static const char *const EXPECT_KEYS[] = {"allowed", "rules",   "warnings",
                                          "message", "mutated", NULL};

// Runs one case; returns 0 when it ran (passed or failed), -1 when the case itself is malformed.
static int
run_case(struct suite *s, const struct policy *p, const cJSON *c, size_t index, unsigned seq)
{
    char where[300], why[1024] = "";
    const char *name = json_str(c, "name");
    snprintf(where, sizeof where, "%s: cases[%zu]%s%s", s->path, index, name ? " " : "",
             name ? name : "");
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(c, "expect");
    if (!cJSON_IsObject(c) || name == NULL || !cJSON_IsObject(expect) ||
        !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(expect, "allowed"))) {
        fprintf(stderr, "%s: a case needs name, manifest and expect.allowed (true or false)\n",
                where);
        return -1;
    }
    if (keys_ok(where, c, CASE_KEYS,
                "name, description, manifest, operation, namespace, user, groups, expect") != 0 ||
        keys_ok(where, expect, EXPECT_KEYS, "allowed, rules, warnings, message, mutated") != 0)
        return -1;
    struct simulate_request ro = {.operation = json_str(c, "operation"),
                                  .namespace = json_str(c, "namespace"),
                                  .user = json_str(c, "user"),
                                  .exceptions = s->exceptions,
                                  .now = s->now};
    ro.operation = ro.operation ? ro.operation : "CREATE";
    ro.user = ro.user ? ro.user : "tableguard-test";
    if (!simulate_operation_valid(ro.operation)) {
        fprintf(stderr, "%s: operation must be CREATE, UPDATE or DELETE\n", where);
        return -1;
    }
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(c, "groups");
    ro.groups = groups ? cJSON_Duplicate(groups, 1) : cJSON_CreateArray();
    if (groups == NULL)
        cJSON_AddItemToArray(ro.groups, cJSON_CreateString("system:authenticated"));
    cJSON *m = suite_manifest(s, cJSON_GetObjectItemCaseSensitive(c, "manifest"), why, sizeof why);
    if (m == NULL) {
        fprintf(stderr, "%s: manifest: %s\n", where, why);
        cJSON_Delete(ro.groups);
        return -1;
    }
    struct simulate_outcome o;
    bool ok = false;
    if (simulate_run(p, m, &ro, seq, &o) != 0)
        snprintf(why, sizeof why, "%s", o.error);
    else
        ok = expect_met(s, expect, &o, why, sizeof why);
    if (s->results != NULL) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "suite", s->path);
        cJSON_AddStringToObject(r, "name", name);
        cJSON_AddBoolToObject(r, "passed", ok);
        if (!ok)
            cJSON_AddStringToObject(r, "reason", why);
        // What ciout_junit reads besides suite and name.
        cJSON_AddStringToObject(r, "classname", s->path);
        cJSON_AddStringToObject(r, "file", s->path);
        if (!ok) {
            cJSON_AddStringToObject(r, "failure", why);
            cJSON_AddStringToObject(r, "failureType", "expectation");
        }
        cJSON_AddItemToArray(s->results, r);
    } else if (ok) {
        printf("PASS %s\n", name);
    } else {
        printf("FAIL %s: %s\n", name, why);
    }
    if (ok)
        s->passed++;
    else
        s->failed++;
    simulate_outcome_free(&o);
    cJSON_Delete(m);
    cJSON_Delete(ro.groups);
    return 0;
}

// The suite's optional exceptions file (relative to the suite) and the time they are judged at
// (RFC 3339, so that a suite's verdicts do not change as the calendar moves on).
static int
suite_exceptions(struct suite *s)
{
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(s->root, "exceptions");
    const cJSON *now = cJSON_GetObjectItemCaseSensitive(s->root, "now");
    s->now = (long long)time(NULL);
    char err[120];
    if ((file != NULL && !cJSON_IsString(file)) || (now != NULL && !cJSON_IsString(now))) {
        fprintf(stderr, "%s: exceptions (a file path) and now (an RFC 3339 time) are strings\n",
                s->path);
        return -1;
    }
    if (now != NULL && exceptions_parse_time(now->valuestring, &s->now, err, sizeof err) != 0) {
        fprintf(stderr, "%s: now \"%s\" %s\n", s->path, now->valuestring, err);
        return -1;
    }
    if (file == NULL)
        return 0;
    char *path = suite_path(s, file->valuestring);
    s->exceptions = simulate_exceptions_load(path);
    free(path);
    return s->exceptions != NULL ? 0 : -1;
}

static int
run_suite(struct suite *s)
{
    char err[512];
    cJSON *docs = manifest_load(s->path, err, sizeof err);
    if (docs == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    s->root = cJSON_DetachItemFromArray(docs, 0);
    cJSON_Delete(docs);
    static const char *const top[] = {"policy", "exceptions", "now", "cases", NULL};
    const char *policy = json_str(s->root, "policy");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(s->root, "cases");
    if (!cJSON_IsObject(s->root) || policy == NULL || !cJSON_IsArray(cases)) {
        fprintf(stderr, "%s: a suite needs policy (a file path) and cases (a list)\n", s->path);
        return -1;
    }
    if (keys_ok(s->path, s->root, top, "policy, exceptions, now, cases") != 0 ||
        suite_exceptions(s) != 0)
        return -1;
    char *ppath = suite_path(s, policy);
    struct policy *p = simulate_policy_load(ppath);
    free(ppath);
    if (p == NULL)
        return -1;
    int rc = 0;
    size_t i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        if (run_case(s, p, c, i, (unsigned)i + 1) != 0)
            rc = -1;
        i++;
    }
    policy_unref(p);
    return rc;
}

static void
usage(FILE *f)
{
    fputs("usage: tableguard test [--output text|json|junit] SUITE.yaml...\n\n"
          "Runs the cases of each suite against the suite's policy and prints PASS or FAIL\n"
          "per case, then \"N passed, M failed\"; with --output json one object:\n"
          "{\"passed\": N, \"failed\": M, \"cases\": [{\"suite\", \"name\", \"passed\", "
          "\"reason\"}]};\nwith --output junit a JUnit XML report (a testsuite per suite file).\n"
          "Exit status: 0 all passed, 1 any failed, 2 a suite or its policy does not load\n"
          "(or a usage error). The format is in docs/policy.md.\n",
          f);
}

int
suite_main(int argc, char **argv)
{
    static const char *const formats[] = {"text", "json", "junit", NULL};
    int format = 0;
    // Flags may follow the suite files (GNU order), as in `test suite.yaml --output json`.
    int rc = outflag_parse_any(argc, argv, "tableguard test", usage, formats, &format);
    bool json = format != 0;
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cJSON *results = json ? cJSON_CreateArray() : NULL;
    size_t passed = 0, failed = 0;
    bool broken = false;
    for (int i = optind; i < argc; i++) {
        char *copy = xstrdup(argv[i]);
        struct suite s = {.path = argv[i], .dir = xstrdup(dirname(copy)), .results = results};
        free(copy);
        broken |= run_suite(&s) != 0;
        passed += s.passed;
        failed += s.failed;
        cJSON_Delete(s.root);
        exceptions_unref(s.exceptions);
        free(s.dir);
    }
    if (format == 2) {
        ciout_junit(results, "tableguard test", stdout);
        cJSON_Delete(results);
    } else if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "passed", (double)passed);
        cJSON_AddNumberToObject(o, "failed", (double)failed);
        cJSON_AddItemToObject(o, "cases", results);
        char *text = cJSON_Print(o);
        cJSON_Delete(o);
        if (text == NULL) {
            fputs("tableguard test: out of memory\n", stderr);
            return 2;
        }
        puts(text);
        free(text);
    } else {
        printf("%zu passed, %zu failed\n", passed, failed);
    }
    return broken ? 2 : failed > 0 ? 1 : 0;
}

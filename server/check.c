// SPDX-License-Identifier: Apache-2.0
// `tableguard check`: runs manifests through the simulated API server and prints each decision,
// the rules that fired, the warnings and the mutated manifest, as text or JSON.
#include "server/check.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"
#include "server/manifest.h"
#include "server/simulate.h"

static const char *
get_str(const cJSON *obj, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

struct check_flags {
    const char *policy;
    const char *exceptions;
    struct simulate_request ro;
    const char *old; // --old FILE
    bool json;
};

static void
check_usage(FILE *f)
{
    fputs("usage: tableguard check --policy FILE [--operation CREATE|UPDATE|DELETE] [--old FILE]\n"
          "                        [--namespace NS] [--user NAME] [--group NAME]...\n"
          "                        [--output text|json] [--exceptions FILE] MANIFEST... | -\n\n"
          "Runs each manifest (YAML, several documents allowed, or JSON) through the mutating\n"
          "and then the validating webhook, as the API server would, and prints the decision,\n"
          "the rules that fired, the warnings and the mutated manifest.\n"
          "--old FILE judges an UPDATE from the objects in FILE (paired by kind and name) to the\n"
          "manifests; --operation DELETE judges deleting each manifest (validating webhook only).\n"
          "--exceptions FILE applies a ProtectionExceptions file, judged at the current time.\n"
          "The policy may also come from TABLEGUARD_POLICY.\n"
          "Exit status: 0 all allowed, 1 any denied, 2 usage or input error.\n",
          f);
}

static int
check_parse(int argc, char **argv, struct check_flags *fl)
{
    static const struct option longs[] = {
        {"policy", required_argument, NULL, 'p'}, {"operation", required_argument, NULL, 'o'},
        {"old", required_argument, NULL, 'P'},    {"namespace", required_argument, NULL, 'n'},
        {"user", required_argument, NULL, 'u'},   {"group", required_argument, NULL, 'g'},
        {"output", required_argument, NULL, 'O'}, {"exceptions", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *env = getenv("TABLEGUARD_POLICY");
    fl->policy = env && *env ? env : NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case 'p':
            fl->policy = optarg;
            break;
        case 'o':
            fl->ro.operation = optarg;
            break;
        case 'n':
            fl->ro.namespace = optarg;
            break;
        case 'P':
            fl->old = optarg;
            break;
        case 'u':
            fl->ro.user = optarg;
            break;
        case 'x':
            fl->exceptions = optarg;
            break;
        case 'g':
            cJSON_AddItemToArray(fl->ro.groups, cJSON_CreateString(optarg));
            break;
        case 'O':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "tableguard check: --output must be text or json\n");
                return 2;
            }
            fl->json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            check_usage(stdout);
            return 0;
        default:
            check_usage(stderr);
            return 2;
        }
    }
    if (fl->ro.operation == NULL)
        fl->ro.operation = fl->old ? "UPDATE" : "CREATE";
    if (!simulate_operation_valid(fl->ro.operation)) {
        fprintf(stderr, "tableguard check: --operation must be CREATE, UPDATE or DELETE\n");
        return 2;
    }
    if (fl->old != NULL && strcmp(fl->ro.operation, "UPDATE") != 0) {
        fprintf(stderr, "tableguard check: --old goes with --operation UPDATE\n");
        return 2;
    }
    if (fl->policy == NULL || optind >= argc) {
        fprintf(stderr, "tableguard check: %s\n",
                fl->policy == NULL ? "--policy is required" : "name at least one manifest or -");
        check_usage(stderr);
        return 2;
    }
    return -1;
}

static const char *
object_label(const cJSON *m, char *buf, size_t len)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m, "metadata");
    const char *kind = get_str(m, "kind"), *name = get_str(meta, "name");
    snprintf(buf, len, "%s \"%s\"", kind ? kind : "object", name ? name : "");
    return buf;
}

static bool
same_string(const cJSON *a, const cJSON *b, const char *key)
{
    const char *x = get_str(a, key), *y = get_str(b, key);
    return x != NULL && y != NULL && strcmp(x, y) == 0;
}

// The object of `olds` that `m` updates: the same kind and name (and namespace when both say).
static const cJSON *
old_of(const cJSON *olds, const cJSON *m)
{
    const cJSON *mm = cJSON_GetObjectItemCaseSensitive(m, "metadata"), *o;
    cJSON_ArrayForEach(o, olds)
    {
        const cJSON *om = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        const char *ons = get_str(om, "namespace"), *mns = get_str(mm, "namespace");
        if (cJSON_IsObject(o) && same_string(o, m, "kind") && same_string(om, mm, "name") &&
            (ons == NULL || mns == NULL || strcmp(ons, mns) == 0))
            return o;
    }
    return NULL;
}

static void
print_text(const char *source, int index, const cJSON *m, const struct simulate_request *ro,
           const struct simulate_outcome *o)
{
    char label[300];
    printf("# %s[%d] %s in namespace \"%s\" (%s): %s", source, index,
           object_label(m, label, sizeof label), simulate_namespace(m, ro), ro->operation,
           o->error     ? "ERROR"
           : o->allowed ? "ALLOWED"
                        : "DENIED");
    if (o->skipped != NULL)
        printf(" (not evaluated: %s)", o->skipped);
    putchar('\n');
    if (o->error != NULL)
        printf("#   error: %s\n", o->error);
    const cJSON *r;
    cJSON_ArrayForEach(r, o->rules)
    {
        printf("#   %s %s: %s\n", get_str(r, "action"), get_str(r, "name"), get_str(r, "message"));
    }
    const cJSON *w;
    cJSON_ArrayForEach(w, o->warnings)
    {
        printf("#   warning: %s\n", w->valuestring);
    }
    if (!o->allowed && o->message != NULL)
        printf("#   denied: %s\n", o->message);
    const cJSON *op;
    cJSON_ArrayForEach(op, o->patch)
    {
        char *value = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(op, "value"));
        printf("#   patch: %s %s %s\n", get_str(op, "op"), get_str(op, "path"), value);
        free(value);
    }
    fputs("---\n", stdout);
    fflush(stdout);
    manifest_print_yaml(o->mutated ? o->mutated : m, stdout);
    fflush(stdout);
}

static cJSON *
result_json(const char *source, int index, const cJSON *m, const struct simulate_request *ro,
            struct simulate_outcome *o)
{
    cJSON *r = cJSON_CreateObject();
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m, "metadata");
    const char *kind = get_str(m, "kind"), *name = get_str(meta, "name");
    cJSON_AddStringToObject(r, "source", source);
    cJSON_AddNumberToObject(r, "document", index);
    cJSON_AddItemToObject(r, "kind", kind ? cJSON_CreateString(kind) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "name", name ? cJSON_CreateString(name) : cJSON_CreateNull());
    cJSON_AddStringToObject(r, "namespace", simulate_namespace(m, ro));
    cJSON_AddStringToObject(r, "operation", ro->operation);
    cJSON_AddBoolToObject(r, "allowed", o->error == NULL && o->allowed);
    cJSON_AddItemToObject(r, "error", o->error ? cJSON_CreateString(o->error) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "skipped",
                          o->skipped ? cJSON_CreateString(o->skipped) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "message",
                          o->message ? cJSON_CreateString(o->message) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "rules", o->rules ? o->rules : cJSON_CreateArray());
    cJSON_AddItemToObject(r, "warnings", o->warnings);
    cJSON_AddItemToObject(r, "patch", o->patch);
    cJSON_AddItemToObject(r, "mutated", o->mutated ? o->mutated : cJSON_Duplicate(m, 1));
    o->rules = o->warnings = o->patch = o->mutated = NULL; // moved into r
    return r;
}

// Runs every manifest of one file ("-": standard input) and prints each outcome, or adds it to
// report with --output json. Returns the exit code the file calls for: 0 all allowed, 1 any
// denied, 2 an input error (the other manifests are still checked).
static int
check_file(const struct policy *p, struct check_flags *fl, const cJSON *olds, const char *path,
           cJSON *report, unsigned *seq)
{
    char err[512];
    cJSON *docs = manifest_load(path, err, sizeof err);
    if (docs == NULL) {
        fprintf(stderr, "tableguard check: %s\n", err);
        return 2;
    }
    const char *source = strcmp(path, "-") == 0 ? "<stdin>" : path;
    int rc = 0, index = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, docs)
    {
        index++;
        if (!cJSON_IsObject(m)) {
            fprintf(stderr, "tableguard check: %s[%d]: not a Kubernetes object (mapping)\n", source,
                    index);
            rc = 2;
            continue;
        }
        if (olds != NULL && (fl->ro.old = old_of(olds, m)) == NULL) {
            char label[300];
            fprintf(stderr, "tableguard check: %s[%d]: --old %s holds no %s\n", source, index,
                    fl->old, object_label(m, label, sizeof label));
            rc = 2;
            continue;
        }
        struct simulate_outcome o;
        simulate_run(p, m, &fl->ro, ++*seq, &o);
        if (o.error != NULL || !o.allowed)
            rc = rc == 2 ? 2 : 1;
        if (fl->json)
            cJSON_AddItemToArray(report, result_json(source, index, m, &fl->ro, &o));
        else
            print_text(source, index, m, &fl->ro, &o);
        simulate_outcome_free(&o);
    }
    cJSON_Delete(docs);
    return rc;
}

int
check_main(int argc, char **argv)
{
    struct check_flags fl = {.ro = {.user = "", .groups = cJSON_CreateArray()}};
    cJSON *olds = NULL;
    struct exceptions *x = NULL;
    int rc = check_parse(argc, argv, &fl);
    struct policy *p = NULL;
    if (rc >= 0)
        goto out;
    if (cJSON_GetArraySize(fl.ro.groups) == 0)
        cJSON_AddItemToArray(fl.ro.groups, cJSON_CreateString("system:authenticated"));
    p = simulate_policy_load(fl.policy);
    if (p != NULL && fl.exceptions != NULL) {
        x = simulate_exceptions_load(fl.exceptions);
        fl.ro.exceptions = x;
        fl.ro.now = (long long)time(NULL);
    }
    if (p == NULL || (fl.exceptions != NULL && x == NULL)) {
        rc = 2;
        goto out;
    }
    if (fl.old != NULL) {
        char err[512];
        olds = manifest_load(fl.old, err, sizeof err);
        if (olds == NULL) {
            fprintf(stderr, "tableguard check: --old %s\n", err);
            rc = 2;
            goto out;
        }
    }
    rc = 0;
    unsigned seq = 0;
    cJSON *report = cJSON_CreateArray();
    for (int i = optind; i < argc; i++) {
        int file_rc = check_file(p, &fl, olds, argv[i], report, &seq);
        rc = file_rc > rc ? file_rc : rc; // an input error (2) wins over a denial (1)
    }
    if (fl.json) {
        cJSON *top = cJSON_CreateObject();
        cJSON_AddBoolToObject(top, "allowed", rc == 0);
        cJSON_AddNumberToObject(top, "exitCode", rc);
        cJSON_AddItemToObject(top, "results", report);
        char *s = cJSON_Print(top);
        puts(s);
        free(s);
        cJSON_Delete(top);
    } else {
        cJSON_Delete(report);
    }
out:
    cJSON_Delete(olds);
    exceptions_unref(x);
    policy_unref(p);
    cJSON_Delete(fl.ro.groups);
    return rc;
}

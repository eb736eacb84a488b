// SPDX-License-Identifier: Apache-2.0
// `tableguard check`: runs manifests through the simulated API server and prints each decision,
// the rules that fired, the warnings and the mutated manifest, as text or JSON.
#include "server/check.h"

#include <dirent.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/jsonr.h"
#include "policy/policy.h"
#include "server/ciout.h"
#include "server/manifest.h"
#include "server/simulate.h"

enum check_output { CHECK_TEXT, CHECK_JSON, CHECK_JUNIT, CHECK_SARIF };

struct check_flags {
    const char *policy;
    const char *exceptions;
    struct simulate_request ro;
    const char *old; // --old FILE
    enum check_output output;
};

static void
check_usage(FILE *f)
{
    fputs("usage: tableguard check --policy FILE [--operation CREATE|UPDATE|DELETE] [--old FILE]\n"
          "                        [--namespace NS] [--user NAME] [--group NAME]...\n"
          "                        [--output text|json|junit|sarif] [--exceptions FILE]\n"
          "                        MANIFEST|DIR... | -\n\n"
          "Runs each manifest (YAML, several documents allowed, or JSON) through the mutating\n"
          "and then the validating webhook, as the API server would, and prints the decision,\n"
          "the rules that fired, the warnings and the mutated manifest. A directory is walked\n"
          "for *.yaml, *.yml and *.json files (sorted; hidden entries skipped). A file that\n"
          "cannot be read or parsed is a result with an error.\n"
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
        case 'O': {
            static const char *const names[] = {"text", "json", "junit", "sarif"};
            size_t k = 0;
            while (k < 4 && strcmp(optarg, names[k]) != 0)
                k++;
            if (k == 4) {
                fprintf(stderr, "tableguard check: --output must be text, json, junit or sarif\n");
                return 2;
            }
            fl->output = (enum check_output)k;
            break;
        }
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
    const char *kind = json_str(m, "kind"), *name = json_str(meta, "name");
    snprintf(buf, len, "%s \"%s\"", kind ? kind : "object", name ? name : "");
    return buf;
}

static bool
same_string(const cJSON *a, const cJSON *b, const char *key)
{
    const char *x = json_str(a, key), *y = json_str(b, key);
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
        const char *ons = json_str(om, "namespace"), *mns = json_str(mm, "namespace");
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
        printf("#   %s %s: %s\n", json_str(r, "action"), json_str(r, "name"),
               json_str(r, "message"));
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
        printf("#   patch: %s %s %s\n", json_str(op, "op"), json_str(op, "path"), value);
        free(value);
    }
    fputs("---\n", stdout);
    fflush(stdout);
    manifest_print_yaml(o->mutated ? o->mutated : m, stdout);
    fflush(stdout);
}

// The line of the component named `name` in an Application read from YAML, or 0.
static int
component_line(const cJSON *m, const char *name)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(m, "spec"), *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(spec, "components"))
    {
        const char *n = json_str(c, "name");
        if (name != NULL && n != NULL && strcmp(n, name) == 0)
            return manifest_line(c);
    }
    return 0;
}

// A file or document that could not be evaluated, as a result beside the others.
static cJSON *
error_json(const char *source, int index, const char *message)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "source", source);
    cJSON_AddNumberToObject(r, "document", index);
    cJSON_AddNullToObject(r, "kind");
    cJSON_AddNullToObject(r, "name");
    cJSON_AddBoolToObject(r, "allowed", false);
    cJSON_AddStringToObject(r, "error", message);
    cJSON_AddItemToObject(r, "rules", cJSON_CreateArray());
    cJSON_AddItemToObject(r, "warnings", cJSON_CreateArray());
    return r;
}

static cJSON *
result_json(const char *source, int index, const cJSON *m, const struct simulate_request *ro,
            struct simulate_outcome *o)
{
    cJSON *r = cJSON_CreateObject();
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m, "metadata");
    const char *kind = json_str(m, "kind"), *name = json_str(meta, "name");
    cJSON_AddStringToObject(r, "source", source);
    cJSON_AddNumberToObject(r, "document", index);
    cJSON_AddItemToObject(r, "kind", kind ? cJSON_CreateString(kind) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "name", name ? cJSON_CreateString(name) : cJSON_CreateNull());
    if (manifest_line(m) > 0)
        cJSON_AddNumberToObject(r, "line", manifest_line(m));
    cJSON_AddStringToObject(r, "namespace", simulate_namespace(m, ro));
    cJSON_AddStringToObject(r, "operation", ro->operation);
    cJSON_AddBoolToObject(r, "allowed", o->error == NULL && o->allowed);
    cJSON_AddItemToObject(r, "error", o->error ? cJSON_CreateString(o->error) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "skipped",
                          o->skipped ? cJSON_CreateString(o->skipped) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "message",
                          o->message ? cJSON_CreateString(o->message) : cJSON_CreateNull());
    cJSON *rules = o->rules ? o->rules : cJSON_CreateArray();
    cJSON *hit;
    cJSON_ArrayForEach(hit, rules)
    {
        int line = component_line(m, json_str(hit, "component"));
        if (line > 0)
            cJSON_AddNumberToObject(hit, "line", line);
    }
    cJSON_AddItemToObject(r, "rules", rules);
    cJSON_AddItemToObject(r, "warnings", o->warnings);
    cJSON_AddItemToObject(r, "patch", o->patch);
    cJSON_AddItemToObject(r, "mutated", o->mutated ? o->mutated : cJSON_Duplicate(m, 1));
    o->rules = o->warnings = o->patch = o->mutated = NULL; // moved into r
    return r;
}

// ---- inputs ----------------------------------------------------------------------------------

struct inputs {
    char **paths;
    size_t count, cap;
};

static void
inputs_add(struct inputs *in, const char *path)
{
    if (in->count == in->cap) {
        in->cap = in->cap ? 2 * in->cap : 16;
        in->paths = realloc(in->paths, in->cap * sizeof *in->paths);
        if (in->paths == NULL)
            abort();
    }
    in->paths[in->count++] = strdup(path);
}

static bool
is_manifest_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot != NULL &&
           (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0 || strcmp(dot, ".json") == 0);
}

static int
visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

// Adds the manifests under dir, depth first in name order, so a run's output is stable.
static int
walk(struct inputs *in, const char *dir, int depth)
{
    struct dirent **names;
    int n = scandir(dir, &names, visible, alphasort);
    if (n < 0) {
        fprintf(stderr, "tableguard check: %s: cannot read the directory\n", dir);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                 names[i]->d_name);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (depth < 32 && walk(in, path, depth + 1) < 0)
                rc = -1;
        } else if (is_manifest_name(names[i]->d_name)) {
            inputs_add(in, path);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static void
inputs_free(struct inputs *in)
{
    for (size_t i = 0; i < in->count; i++)
        free(in->paths[i]);
    free(in->paths);
}

// ---- JUnit -------------------------------------------------------------------------------------

// One JUnit test case per result (per object, or per file that could not be read).
static cJSON *
junit_cases(const cJSON *results)
{
    cJSON *cases = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, results)
    {
        cJSON *c = cJSON_CreateObject();
        const char *source = json_str(r, "source"), *kind = json_str(r, "kind");
        const char *name = json_str(r, "name");
        const cJSON *doc = cJSON_GetObjectItemCaseSensitive(r, "document");
        const cJSON *line = cJSON_GetObjectItemCaseSensitive(r, "line");
        char label[512];
        if (kind != NULL)
            snprintf(label, sizeof label, "%s %s (document %d)", kind, name ? name : "",
                     doc ? doc->valueint : 0);
        else
            snprintf(label, sizeof label, "%s (document %d)", source, doc ? doc->valueint : 0);
        cJSON_AddStringToObject(c, "suite", source);
        cJSON_AddStringToObject(c, "classname", source);
        cJSON_AddStringToObject(c, "name", label);
        cJSON_AddStringToObject(c, "file", source);
        if (cJSON_IsNumber(line))
            cJSON_AddNumberToObject(c, "line", line->valueint);
        if (json_str(r, "error") != NULL) {
            cJSON_AddStringToObject(c, "error", json_str(r, "error"));
        } else if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "allowed"))) {
            cJSON_AddStringToObject(c, "failure",
                                    json_str(r, "message") ? json_str(r, "message") : "denied");
            cJSON_AddStringToObject(c, "failureType", "denied");
        }
        const cJSON *w;
        size_t len = 0;
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(r, "warnings")) len +=
            strlen(cJSON_GetStringValue(w) ? cJSON_GetStringValue(w) : "") + 10;
        if (len > 0) {
            char *out = calloc(1, len + 1), *q = out;
            cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(r, "warnings"))
            {
                q += sprintf(q, "warning: %s\n",
                             cJSON_GetStringValue(w) ? cJSON_GetStringValue(w) : "");
            }
            cJSON_AddStringToObject(c, "output", out);
            free(out);
        }
        cJSON_AddItemToArray(cases, c);
    }
    return cases;
}

// ---- the command -------------------------------------------------------------------------------

// Evaluates every object of one file into `report` (or prints it). Returns the worst status.
static int
check_file(const char *path, const struct policy *p, struct check_flags *fl, const cJSON *olds,
           unsigned *seq, cJSON *report)
{
    char err[512];
    const char *source = strcmp(path, "-") == 0 ? "<stdin>" : path;
    int rc = 0;
    cJSON *docs = manifest_load(path, err, sizeof err);
    if (docs == NULL) {
        fprintf(stderr, "tableguard check: %s\n", err);
        if (fl->output == CHECK_TEXT)
            printf("# %s: ERROR: %s\n", source, err);
        cJSON *e = error_json(source, 0, err);
        // Diagnostics are "FILE:LINE:COL: message": keep the position for SARIF and JUnit.
        size_t n = strlen(source);
        int line = 0, col = 0;
        if (strncmp(err, source, n) == 0 && sscanf(err + n, ":%d:%d:", &line, &col) == 2 &&
            line > 0)
            cJSON_AddNumberToObject(e, "line", line);
        cJSON_AddItemToArray(report, e);
        return 2;
    }
    int index = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, docs)
    {
        index++;
        if (!cJSON_IsObject(m)) {
            static const char what[] = "not a Kubernetes object (mapping)";
            fprintf(stderr, "tableguard check: %s[%d]: %s\n", source, index, what);
            cJSON_AddItemToArray(report, error_json(source, index, what));
            rc = 2;
            continue;
        }
        if (olds != NULL && (fl->ro.old = old_of(olds, m)) == NULL) {
            char label[300], what[700];
            snprintf(what, sizeof what, "--old %s holds no %s", fl->old,
                     object_label(m, label, sizeof label));
            fprintf(stderr, "tableguard check: %s[%d]: %s\n", source, index, what);
            cJSON_AddItemToArray(report, error_json(source, index, what));
            rc = 2;
            continue;
        }
        struct simulate_outcome o;
        simulate_run(p, m, &fl->ro, ++*seq, &o);
        if ((o.error != NULL || !o.allowed) && rc == 0)
            rc = 1;
        if (fl->output == CHECK_TEXT)
            print_text(source, index, m, &fl->ro, &o);
        else
            cJSON_AddItemToArray(report, result_json(source, index, m, &fl->ro, &o));
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
    struct inputs in = {0};
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
    for (int i = optind; i < argc; i++) {
        struct stat st;
        if (strcmp(argv[i], "-") != 0 && stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (walk(&in, argv[i], 0) < 0)
                rc = 2;
        } else {
            inputs_add(&in, argv[i]);
        }
    }
    unsigned seq = 0;
    cJSON *report = cJSON_CreateArray();
    for (size_t i = 0; i < in.count; i++) {
        int r = check_file(in.paths[i], p, &fl, olds, &seq, report);
        rc = rc == 2 || r == 2 ? 2 : rc > r ? rc : r;
    }
    if (fl.output == CHECK_JSON) {
        cJSON *top = cJSON_CreateObject();
        cJSON_AddBoolToObject(top, "allowed", rc == 0);
        cJSON_AddNumberToObject(top, "exitCode", rc);
        cJSON_AddItemToObject(top, "results", report);
        char *s = cJSON_Print(top);
        puts(s);
        free(s);
        cJSON_Delete(top);
    } else {
        if (fl.output == CHECK_JUNIT) {
            cJSON *cases = junit_cases(report);
            ciout_junit(cases, "tableguard check", stdout);
            cJSON_Delete(cases);
        } else if (fl.output == CHECK_SARIF) {
            ciout_sarif(report, p, rc, stdout);
        }
        cJSON_Delete(report);
    }
out:
    cJSON_Delete(olds);
    exceptions_unref(x);
    inputs_free(&in);
    policy_unref(p);
    cJSON_Delete(fl.ro.groups);
    return rc;
}

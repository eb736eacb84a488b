// SPDX-License-Identifier: Apache-2.0
// `tableguard policy lint`: the policy loader's diagnostics, one file after another, then the
// checks that catch an edit which loads but silently weakens protection: names within two edits
// of the standard trait and component, and exceptions that cannot work as written.
#include "server/lint.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "policy/coverage.h"
#include "policy/exceptions.h"
#include "policy/policy.h"
#include "server/manifest.h"
#include "util/xalloc.h"

// The names the trait's reference defines; a policy one typo away from them protects nothing.
static const char STANDARD_TRAIT[] = "dynamodb-protection-kro";
static const char STANDARD_COMPONENT[] = "aws-dynamodb-kro";

struct lint_flags {
    bool print, strict;
    const char *exceptions;
    const char **against; // --against paths, in order
    size_t against_count;
};

// The manifests --against names, read once for every policy.
struct corpus {
    cJSON *docs; // every document, in order
    char **sources;
    struct coverage_manifest *items;
    size_t count;
};

static void
usage(FILE *f)
{
    fputs("usage: tableguard policy lint [--exceptions FILE] [--against MANIFEST|DIR]...\n"
          "                              [--strict] [--print] FILE...\n\n"
          "Loads each policy file as the server would and prints \"FILE: policy OK\" or every\n"
          "diagnostic as FILE:LINE:COL: MESSAGE. Then warns (\"FILE: warning: ...\") about what\n"
          "loads but protects less than it seems: a trait.type or component type within two\n"
          "edits of the standard dynamodb-protection-kro / aws-dynamodb-kro.\n\n"
          "  --exceptions FILE  also load this ProtectionExceptions file and check it against\n"
          "                     each policy: an unknown rule, a glob that can never match a\n"
          "                     table of the rules it waives, an expiry beyond\n"
          "                     spec.exceptionsMaxDays are errors; an expired exception is a\n"
          "                     warning. Each names the file, line and exception.\n"
          "  --against PATH     (repeatable) Applications, YAML or JSON; a directory walks its\n"
          "                     *.yaml, *.yml and *.json. Warns about rules, profiles and\n"
          "                     exceptions that match no table there, components whose type\n"
          "                     is not covered but that hold a table name, and table names\n"
          "                     that tableNameFrom misses only by case.\n"
          "  --strict           warnings fail the lint too\n"
          "  --print            write the normalised policy, with every default filled in, to\n"
          "                     stdout (the OK line then goes to stderr)\n\n"
          "Exit status: 0 every file loads (and, with --strict, nothing is warned about),\n"
          "1 otherwise, 2 usage error.\n",
          f);
}

// A name that is near the standard one but not it: a typo that switches protection off.
static bool
near_miss(const char *name, const char *standard)
{
    const char *const names[] = {standard};
    return strcmp(name, standard) != 0 && policy_suggest(name, names, 1) != NULL;
}

static size_t
lint_names(const char *file, const struct policy_spec *s)
{
    size_t n = 0;
    if (near_miss(s->trait_type, STANDARD_TRAIT)) {
        fprintf(stderr,
                "%s: warning: trait.type \"%s\" is not the standard \"%s\" but within two edits "
                "of it: the real trait would be ignored and tables read as unprotected\n",
                file, s->trait_type, STANDARD_TRAIT);
        n++;
    }
    for (size_t i = 0; i < s->component_types.count; i++) {
        const char *t = s->component_types.items[i];
        if (near_miss(t, STANDARD_COMPONENT)) {
            fprintf(stderr,
                    "%s: warning: components.types \"%s\" is not the standard \"%s\" but within "
                    "two edits of it: components of the real type would never be protected\n",
                    file, t, STANDARD_COMPONENT);
            n++;
        }
    }
    return n;
}

static void
print_diags(const struct diag *d, const char *prefix)
{
    for (size_t k = 0; k < d->count; k++) {
        char *line = diag_format(&d->items[k]);
        // "FILE:LINE: message" becomes "FILE:LINE: warning: message".
        const char *sep = prefix[0] ? strstr(line, ": exception ") : NULL;
        if (sep != NULL)
            fprintf(stderr, "%.*s: %s%s\n", (int)(sep - line), line, prefix, sep + 2);
        else
            fprintf(stderr, "%s\n", line);
        free(line);
    }
}

// Checks the exceptions against one policy; returns the number of errors and adds warnings.
static size_t
lint_exceptions(const struct exceptions *x, const struct policy_spec *s, size_t *warned)
{
    struct diag errors = {0}, warnings = {0};
    exceptions_lint(x, s, (long long)time(NULL), &errors, &warnings);
    print_diags(&errors, "");
    print_diags(&warnings, "warning: ");
    size_t n = errors.count;
    *warned += warnings.count;
    diag_free(&errors);
    diag_free(&warnings);
    return n;
}

static bool
manifest_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && ((n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
                              (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
                              (n > 5 && strcmp(name + n - 5, ".json") == 0));
}

// Adds the documents of one file, or of every manifest under a directory (sorted, recursive).
// Returns the number of files that did not read.
static size_t
corpus_add(struct corpus *c, const char *path, int depth)
{
    struct stat st;
    if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        struct dirent **names;
        int n = depth < 16 ? scandir(path, &names, NULL, alphasort) : -1;
        size_t bad = n < 0 ? 1 : 0;
        if (n < 0)
            fprintf(stderr, "%s: cannot read the directory\n", path);
        for (int i = 0; i < n; i++) {
            char *sub = xasprintf("%s/%s", path, names[i]->d_name);
            bool dir = names[i]->d_name[0] != '.' && stat(sub, &st) == 0 && S_ISDIR(st.st_mode);
            if (dir || manifest_name(names[i]->d_name))
                bad += corpus_add(c, sub, depth + 1);
            free(sub);
            free(names[i]);
        }
        free(n >= 0 ? names : NULL);
        return bad;
    }
    char err[512];
    cJSON *docs = manifest_load(path, err, sizeof err);
    if (docs == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int index = 0;
    while (cJSON_GetArraySize(docs) > 0) {
        cJSON *doc = cJSON_DetachItemFromArray(docs, 0);
        cJSON_AddItemToArray(c->docs, doc);
        c->sources = xrealloc(c->sources, (c->count + 1) * sizeof *c->sources);
        c->sources[c->count++] = xasprintf("%s[%d]", path, ++index);
    }
    cJSON_Delete(docs);
    return 0;
}

static void
corpus_free(struct corpus *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->sources[i]);
    free(c->sources);
    free(c->items);
    cJSON_Delete(c->docs);
}

// Reads every --against path; returns -1 when any does not read.
static int
corpus_load(struct corpus *c, const struct lint_flags *fl)
{
    c->docs = cJSON_CreateArray();
    size_t bad = 0;
    for (size_t i = 0; i < fl->against_count; i++)
        bad += corpus_add(c, fl->against[i], 0);
    c->items = xcalloc(c->count ? c->count : 1, sizeof *c->items);
    size_t k = 0;
    const cJSON *doc;
    cJSON_ArrayForEach(doc, c->docs)
    {
        c->items[k] = (struct coverage_manifest){c->sources[k], doc};
        k++;
    }
    return bad > 0 ? -1 : 0;
}

static size_t
lint_against(const struct corpus *c, const char *file, const struct policy_spec *s,
             const struct exceptions *x)
{
    struct diag w = {0};
    size_t n = coverage_check(s, file, x, c->items, c->count, &w);
    print_diags(&w, "");
    diag_free(&w);
    return n;
}

static int
parse(int argc, char **argv, struct lint_flags *fl, int *first)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--print") == 0) {
            fl->print = true;
        } else if (strcmp(argv[i], "--strict") == 0) {
            fl->strict = true;
        } else if (strcmp(argv[i], "--exceptions") == 0 && i + 1 < argc) {
            fl->exceptions = argv[++i];
        } else if (strcmp(argv[i], "--against") == 0 && i + 1 < argc) {
            fl->against = xrealloc(fl->against, (fl->against_count + 1) * sizeof *fl->against);
            fl->against[fl->against_count++] = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "tableguard policy lint: unknown flag \"%s\"%s\n", argv[i],
                    strcmp(argv[i], "--exceptions") == 0 || strcmp(argv[i], "--against") == 0
                        ? " without its argument"
                        : "");
            usage(stderr);
            return -1;
        }
    }
    *first = i;
    return 0;
}

int
lint_main(int argc, char **argv)
{
    struct lint_flags fl = {0};
    int i, pr = parse(argc, argv, &fl, &i);
    if (pr != 0)
        return pr > 0 ? 0 : 2;
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    int rc = 0;
    size_t printed = 0, warned = 0;
    struct exceptions *x = NULL;
    struct corpus corpus = {0};
    if (fl.against_count > 0 && corpus_load(&corpus, &fl) != 0)
        rc = 1;
    if (fl.exceptions != NULL) {
        struct diag d = {0};
        x = exceptions_load_file(fl.exceptions, &d);
        print_diags(&d, "");
        diag_free(&d);
        if (x == NULL)
            rc = 1;
        else
            fprintf(stderr, "%s: exceptions OK (%zu)\n", fl.exceptions, exceptions_count(x));
    }
    for (; i < argc; i++) {
        struct diag d = {0};
        struct policy *p = policy_load_file(argv[i], &d);
        print_diags(&d, "");
        diag_free(&d);
        if (p == NULL) {
            rc = 1;
            continue;
        }
        // A trait.type typo leaves every table matched by its rules, so real manifests do not
        // show it: the near-miss check runs with --against too.
        warned += lint_names(argv[i], policy_spec(p));
        if (fl.against_count > 0)
            warned += lint_against(&corpus, argv[i], policy_spec(p), x);
        if (x != NULL && lint_exceptions(x, policy_spec(p), &warned) > 0) {
            rc = 1; // the policy loads, but the exceptions do not work with it
            policy_unref(p);
            continue;
        }
        // With --print stdout stays a YAML stream a pipeline can read.
        fprintf(fl.print ? stderr : stdout, "%s: policy OK\n", argv[i]);
        if (fl.print) {
            if (printed++ > 0)
                fputs("---\n", stdout);
            policy_print(p, stdout);
        }
        policy_unref(p);
    }
    exceptions_unref(x);
    corpus_free(&corpus);
    free(fl.against);
    if (fl.strict && warned > 0) {
        fprintf(stderr, "tableguard policy lint: %zu warning%s and --strict\n", warned,
                warned == 1 ? "" : "s");
        rc = 1;
    }
    return rc;
}

// SPDX-License-Identifier: Apache-2.0
// Protection exceptions: loading a ProtectionExceptions document through the policy's YAML
// loader, RFC 3339 times, and the lookup evaluation makes for every violation.
#include "policy/exceptions.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/xalloc.h"

// The exceptions that name one rule, in file order (exceptions_waiver's index).
struct waiver_list {
    const char *rule; // borrowed from the first exception naming it
    size_t *at;       // indexes into items, ascending
    size_t count;
};

struct exceptions {
    atomic_uint refs;
    char *name;
    char *file;
    char sha256[65];
    struct exception *items;
    size_t count;
    struct waiver_list *by_rule; // one per distinct rule name
    size_t rule_count;
};

// ---- Times -----------------------------------------------------------------------------------

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
static long long
days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

// Reads exactly n digits at *p.
static int
digits(const char **p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + (unsigned)((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int
exceptions_parse_time(const char *s, long long *out, char *err, size_t errlen)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    unsigned y, mo, d, h, mi, se;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || *p++ != 'T' || digits(&p, 2, &h) || *p++ != ':' ||
        digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se)) {
        snprintf(err, errlen, "is not an RFC 3339 time (write YYYY-MM-DDTHH:MM:SSZ)");
        return -1;
    }
    if (*p == '.') {
        const char *frac = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == frac) {
            snprintf(err, errlen, "has a \".\" with no fraction after the seconds");
            return -1;
        }
    }
    if (*p != 'Z' || p[1] != '\0') {
        snprintf(err, errlen,
                 *p == '+' || *p == '-' ? "has a UTC offset: times are UTC, write them ending in Z"
                                        : "must end in Z (times are UTC, RFC 3339)");
        return -1;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || se > 60) {
        snprintf(err, errlen, "is not a valid date and time");
        return -1;
    }
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 0;
}

// ---- Loading ---------------------------------------------------------------------------------

enum { R_APIVERSION, R_KIND, R_METADATA, R_SPEC, R_N };
static const struct policy_yaml_field ROOT_FIELDS[R_N] = {
    {"apiVersion", POLICY_YAML_STR, true},
    {"kind", POLICY_YAML_STR, true},
    {"metadata", POLICY_YAML_MAP, true},
    {"spec", POLICY_YAML_MAP, true},
};

enum { M_NAME, M_LABELS, M_ANNOTATIONS, M_N };
static const struct policy_yaml_field META_FIELDS[M_N] = {
    {"name", POLICY_YAML_STR, true},
    {"labels", POLICY_YAML_ANYMAP, false},
    {"annotations", POLICY_YAML_ANYMAP, false},
};

enum { S_EXCEPTIONS, S_N };
static const struct policy_yaml_field SPEC_FIELDS[S_N] = {
    {"exceptions", POLICY_YAML_MAPLIST, true},
};

enum {
    E_NAME,
    E_TICKET,
    E_APPROVED_BY,
    E_REASON,
    E_EXPIRES,
    E_NAMESPACES,
    E_APPLICATIONS,
    E_TABLES,
    E_RULES,
    E_N
};
static const struct policy_yaml_field EXCEPTION_FIELDS[E_N] = {
    {"name", POLICY_YAML_STR, true},
    {"ticket", POLICY_YAML_STR, true},
    {"approvedBy", POLICY_YAML_STR, true},
    {"reason", POLICY_YAML_STR, false},
    {"expires", POLICY_YAML_STR, true},
    {"namespaces", POLICY_YAML_STRLIST, false},
    {"applications", POLICY_YAML_STRLIST, false},
    {"tables", POLICY_YAML_STRLIST, true},
    {"rules", POLICY_YAML_STRLIST, true},
};

static struct policy_globs
all_globs(void)
{
    struct policy_globs g = {xcalloc(1, sizeof(char *)), 1, NULL};
    g.items[0] = xstrdup("*");
    policy_globs_compile(&g);
    return g;
}

static void
load_exception(struct policy_yaml *y, const yaml_node_t *map, size_t index, struct exception *e)
{
    char what[160];
    const yaml_node_t *f[E_N];
    snprintf(what, sizeof what, "exceptions[%zu]", index);
    policy_yaml_label(y, map, "exception", what, sizeof what);
    policy_yaml_check_map(y, map, what, EXCEPTION_FIELDS, E_N, f);
    e->line = map->start_mark.line + 1;
    e->name = f[E_NAME] ? xstrdup(policy_yaml_scalar(f[E_NAME])) : xstrdup(what);
    e->ticket = xstrdup(f[E_TICKET] ? policy_yaml_scalar(f[E_TICKET]) : "");
    e->approved_by = xstrdup(f[E_APPROVED_BY] ? policy_yaml_scalar(f[E_APPROVED_BY]) : "");
    e->reason = xstrdup(f[E_REASON] ? policy_yaml_scalar(f[E_REASON]) : "");
    e->expires_text = xstrdup(f[E_EXPIRES] ? policy_yaml_scalar(f[E_EXPIRES]) : "");
    char err[120];
    if (f[E_EXPIRES] != NULL &&
        exceptions_parse_time(e->expires_text, &e->expires, err, sizeof err) != 0)
        policy_yaml_error(y, f[E_EXPIRES], "%s: \"expires\" \"%.60s\" %s", what, e->expires_text,
                          err);
    e->namespaces = f[E_NAMESPACES] ? policy_yaml_globs(y, f[E_NAMESPACES], what) : all_globs();
    e->applications =
        f[E_APPLICATIONS] ? policy_yaml_globs(y, f[E_APPLICATIONS], what) : all_globs();
    e->tables = policy_yaml_globs(y, f[E_TABLES], what);
    if (f[E_TABLES] != NULL && e->tables.count == 0)
        policy_yaml_error(y, f[E_TABLES], "%s: \"tables\" must name at least one pattern", what);
    // Rule names are names, not globs: an exception says exactly what it waives.
    for (size_t i = 0; f[E_RULES] != NULL; i++) {
        const yaml_node_t *item = policy_yaml_item(y, f[E_RULES], i);
        if (item == NULL)
            break;
        const char *rule = policy_yaml_scalar(item);
        if (rule == NULL)
            continue; // reported by the shape check
        e->rules = xrealloc(e->rules, (e->rule_count + 1) * sizeof *e->rules);
        e->rules[e->rule_count++] = xstrdup(rule);
    }
    if (f[E_RULES] != NULL && e->rule_count == 0)
        policy_yaml_error(y, f[E_RULES], "%s: \"rules\" must name at least one rule it waives",
                          what);
}

static void
load_list(struct policy_yaml *y, const yaml_node_t *list, struct exceptions *x)
{
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n > EXCEPTIONS_MAX) {
        policy_yaml_error(y, list, "spec: %zu exceptions, more than the %d a file may hold", n,
                          EXCEPTIONS_MAX);
        return;
    }
    x->items = xcalloc(n ? n : 1, sizeof *x->items);
    const yaml_node_t **nodes = xcalloc(n ? n : 1, sizeof *nodes);
    const char **names = xcalloc(n ? n : 1, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = policy_yaml_item(y, list, i);
        if (item == NULL)
            break;
        if (item->type != YAML_MAPPING_NODE)
            continue; // reported by the shape check
        nodes[x->count] = item;
        load_exception(y, item, i, &x->items[x->count]);
        names[x->count] = x->items[x->count].name;
        x->count++;
    }
    policy_yaml_duplicates(y, "exception", names, nodes, x->count);
    free(names);
    free(nodes);
}

static void
load_root(struct policy_yaml *y, const yaml_node_t *root, void *arg)
{
    struct exceptions *x = arg;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        if (root == NULL)
            policy_yaml_error(y, NULL,
                              "empty exceptions file (expected a ProtectionExceptions document "
                              "with apiVersion, kind, metadata and spec)");
        else
            policy_yaml_error(y, root,
                              "exceptions: expected a mapping with apiVersion, kind, metadata and "
                              "spec, got %s",
                              root->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar");
        return;
    }
    const yaml_node_t *f[R_N];
    policy_yaml_check_map(y, root, "exceptions", ROOT_FIELDS, R_N, f);
    const char *api = policy_yaml_scalar(f[R_APIVERSION]), *kind = policy_yaml_scalar(f[R_KIND]);
    if (api != NULL && strcmp(api, "tableguard.io/v1") != 0)
        policy_yaml_error(
            y, f[R_APIVERSION],
            "exceptions: unsupported apiVersion \"%s\" (expected \"tableguard.io/v1\")", api);
    if (kind != NULL && strcmp(kind, "ProtectionExceptions") != 0)
        policy_yaml_error(
            y, f[R_KIND],
            "exceptions: unsupported kind \"%s\" (expected \"ProtectionExceptions\")%s", kind,
            strcmp(kind, "ProtectionPolicy") == 0
                ? ": this is a policy file, not an exceptions file"
                : "");
    if (f[R_METADATA] != NULL) {
        const yaml_node_t *mf[M_N];
        policy_yaml_check_map(y, f[R_METADATA], "metadata", META_FIELDS, M_N, mf);
        if (mf[M_NAME] != NULL)
            x->name = xstrdup(policy_yaml_scalar(mf[M_NAME]));
    }
    if (f[R_SPEC] != NULL) {
        const yaml_node_t *sf[S_N];
        policy_yaml_check_map(y, f[R_SPEC], "spec", SPEC_FIELDS, S_N, sf);
        if (sf[S_EXCEPTIONS] != NULL)
            load_list(y, sf[S_EXCEPTIONS], x);
    }
}

// ---- Object lifetime -------------------------------------------------------------------------

static void
exception_free(struct exception *e)
{
    free(e->name);
    free(e->ticket);
    free(e->approved_by);
    free(e->reason);
    free(e->expires_text);
    policy_globs_free(&e->namespaces);
    policy_globs_free(&e->applications);
    policy_globs_free(&e->tables);
    for (size_t i = 0; i < e->rule_count; i++)
        free(e->rules[i]);
    free(e->rules);
}

static struct waiver_list *
rule_list(const struct exceptions *x, const char *rule)
{
    for (size_t i = 0; i < x->rule_count; i++)
        if (strcmp(x->by_rule[i].rule, rule) == 0)
            return &x->by_rule[i];
    return NULL;
}

// A violation is looked up by its rule: each distinct rule name gets the list of the exceptions
// that waive it, in file order, so that a lookup tries only those (a file's exceptions spread
// over a policy's few rules) and the first in the file still wins. An exception naming a rule
// twice is listed once.
static void
index_rules(struct exceptions *x)
{
    size_t names = 0; // at most this many distinct rule names
    for (size_t i = 0; i < x->count; i++)
        names += x->items[i].rule_count;
    x->by_rule = xcalloc(names ? names : 1, sizeof *x->by_rule);
    for (size_t i = 0; i < x->count; i++)
        for (size_t k = 0; k < x->items[i].rule_count; k++) {
            const char *rule = x->items[i].rules[k];
            struct waiver_list *l = rule_list(x, rule);
            if (l == NULL) {
                l = &x->by_rule[x->rule_count++];
                l->rule = rule;
                l->at = xcalloc(x->count, sizeof *l->at);
            }
            if (l->count == 0 || l->at[l->count - 1] != i)
                l->at[l->count++] = i;
        }
}

struct exceptions *
exceptions_load_buffer(const char *buf, size_t len, const char *file, struct diag *diags)
{
    struct exceptions *x = xcalloc(1, sizeof *x);
    atomic_init(&x->refs, 1);
    x->file = xstrdup(file);
    if (policy_yaml_load(buf, len, file, "exceptions", diags, load_root, x) != 0) {
        exceptions_unref(x);
        return NULL;
    }
    policy_digest(buf, len, x->sha256);
    index_rules(x);
    return x;
}

struct exceptions *
exceptions_load_file(const char *path, struct diag *diags)
{
    size_t len;
    char *buf = policy_read_file(path, &len, diags);
    if (buf == NULL)
        return NULL;
    struct exceptions *x = exceptions_load_buffer(buf, len, path, diags);
    free(buf);
    return x;
}

struct exceptions *
exceptions_ref(struct exceptions *x)
{
    if (x != NULL)
        atomic_fetch_add_explicit(&x->refs, 1, memory_order_relaxed);
    return x;
}

void
exceptions_unref(struct exceptions *x)
{
    if (x == NULL || atomic_fetch_sub_explicit(&x->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < x->count; i++)
        exception_free(&x->items[i]);
    for (size_t i = 0; i < x->rule_count; i++)
        free(x->by_rule[i].at);
    free(x->by_rule);
    free(x->items);
    free(x->name);
    free(x->file);
    free(x);
}

const char *
exceptions_name(const struct exceptions *x)
{
    return x->name;
}

const char *
exceptions_file(const struct exceptions *x)
{
    return x->file;
}

const char *
exceptions_sha256(const struct exceptions *x)
{
    return x->sha256;
}

size_t
exceptions_count(const struct exceptions *x)
{
    return x ? x->count : 0;
}

const struct exception *
exceptions_at(const struct exceptions *x, size_t i)
{
    return &x->items[i];
}

// ---- Lookup ----------------------------------------------------------------------------------

// In force at now: not expired, and not expiring further ahead than the policy honours.
static bool
in_force(const struct exception *e, long long now, unsigned max_days)
{
    bool capped = max_days > 0 && e->expires - now > (long long)max_days * 86400;
    return now < e->expires && !capped;
}

const struct exception *
exceptions_waiver(const struct exceptions *x, const char *rule, const char *table, const char *app,
                  const char *ns, long long now, unsigned max_days)
{
    const struct waiver_list *l = x != NULL ? rule_list(x, rule) : NULL;
    size_t n = SIZE_MAX; // strlen(table), once an exception in force needs it
    for (size_t i = 0; l != NULL && i < l->count; i++) {
        const struct exception *e = &x->items[l->at[i]];
        if (!in_force(e, now, max_days))
            continue;
        if (n == SIZE_MAX)
            n = strlen(table);
        if (policy_globs_match_len(&e->tables, table, n) &&
            policy_globs_match(&e->namespaces, ns ? ns : "") &&
            policy_globs_match(&e->applications, app ? app : ""))
            return e;
    }
    return NULL;
}

void
exceptions_view_init(struct exceptions_view *v, const struct exceptions *x, const char *app,
                     const char *ns, long long now, unsigned max_days)
{
    memset(v, 0, sizeof *v);
    v->x = x;
    for (size_t i = 0; i < exceptions_count(x); i++) {
        const struct exception *e = &x->items[i];
        if (in_force(e, now, max_days) && policy_globs_match(&e->namespaces, ns ? ns : "") &&
            policy_globs_match(&e->applications, app ? app : ""))
            v->in_scope[i / 64] |= (uint64_t)1 << (i % 64);
    }
}

const struct exception *
exceptions_waiver_among(const struct exceptions_view *v, const char *rule, const char *table)
{
    const struct waiver_list *l = v->x != NULL ? rule_list(v->x, rule) : NULL;
    size_t n = SIZE_MAX; // strlen(table), once an exception in scope needs it
    for (size_t i = 0; l != NULL && i < l->count; i++) {
        size_t k = l->at[i];
        if ((v->in_scope[k / 64] >> (k % 64) & 1) == 0)
            continue;
        if (n == SIZE_MAX)
            n = strlen(table);
        if (policy_globs_match_len(&v->x->items[k].tables, table, n))
            return &v->x->items[k];
    }
    return NULL;
}

// ---- Lint ------------------------------------------------------------------------------------

// One position of a glob: a star, or a set of bytes (case folded) one character may be.
struct gtok {
    bool star;
    unsigned char set[32];
};

#define GLOB_MAX_TOKENS 256

static void
set_add(unsigned char *set, unsigned char ch)
{
    set[ch >> 3] |= (unsigned char)(1u << (ch & 7));
    unsigned char other = ch >= 'a' && ch <= 'z'   ? (unsigned char)(ch - 32)
                          : ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32)
                                                   : ch;
    set[other >> 3] |= (unsigned char)(1u << (other & 7));
}

// A bracket expression from just after its "["; returns the position after its "]" (the loader
// refuses an unclosed one, so a missing "]" ends the glob).
static const char *
bracket(const char *p, unsigned char *set)
{
    bool negate = *p == '!' || *p == '^';
    unsigned char in[32] = {0};
    if (negate)
        p++;
    bool first = true;
    while (*p && (*p != ']' || first)) {
        unsigned char lo = (unsigned char)*p++;
        if (lo == '\\' && *p)
            lo = (unsigned char)*p++;
        unsigned char hi = lo;
        if (*p == '-' && p[1] && p[1] != ']') {
            hi = (unsigned char)p[1];
            p += 2;
        }
        for (unsigned c = lo; c <= hi; c++)
            set_add(in, (unsigned char)c);
        first = false;
    }
    for (int i = 0; i < 32; i++)
        set[i] = negate ? (unsigned char)~in[i] : in[i];
    return *p ? p + 1 : p;
}

// Splits a glob into tokens; returns their count, or SIZE_MAX when there are too many.
static size_t
tokens(const char *g, struct gtok *out)
{
    size_t n = 0;
    for (const char *p = g; *p; n++) {
        if (n == GLOB_MAX_TOKENS)
            return SIZE_MAX;
        memset(&out[n], 0, sizeof out[n]);
        if (*p == '*') {
            out[n].star = true;
            memset(out[n].set, 0xff, sizeof out[n].set);
            p++;
        } else if (*p == '?') {
            memset(out[n].set, 0xff, sizeof out[n].set);
            p++;
        } else if (*p == '[') {
            p = bracket(p + 1, out[n].set);
        } else {
            if (*p == '\\' && p[1])
                p++;
            set_add(out[n].set, (unsigned char)*p++);
        }
    }
    return n;
}

static bool
sets_meet(const struct gtok *a, const struct gtok *b)
{
    for (int i = 0; i < 32; i++)
        if (a->set[i] & b->set[i])
            return true;
    return false;
}

// The product of the two globs' automata, searched from (0, 0) for (na, nb): a string both match.
bool
exceptions_globs_overlap(const char *a, const char *b)
{
    struct gtok *ta = xcalloc(GLOB_MAX_TOKENS, sizeof *ta);
    struct gtok *tb = xcalloc(GLOB_MAX_TOKENS, sizeof *tb);
    size_t na = tokens(a, ta), nb = tokens(b, tb);
    bool found = na == SIZE_MAX || nb == SIZE_MAX; // too long to judge: assume they may meet
    size_t w = nb + 1, cells = found ? 1 : (na + 1) * w;
    bool *seen = xcalloc(cells, sizeof *seen);
    size_t *stack = xcalloc(cells, sizeof *stack), top = 0;
    if (!found) {
        seen[0] = true;
        stack[top++] = 0;
    }
    while (top > 0 && !found) {
        size_t cell = stack[--top], i = cell / w, j = cell % w;
        if (i == na && j == nb) {
            found = true;
            break;
        }
        size_t next[3];
        int k = 0;
        if (i < na && ta[i].star)
            next[k++] = (i + 1) * w + j;
        if (j < nb && tb[j].star)
            next[k++] = i * w + j + 1;
        if (i < na && j < nb && !(ta[i].star && tb[j].star) && sets_meet(&ta[i], &tb[j]))
            next[k++] = (ta[i].star ? i : i + 1) * w + (tb[j].star ? j : j + 1);
        for (int m = 0; m < k; m++)
            if (!seen[next[m]]) {
                seen[next[m]] = true;
                stack[top++] = next[m];
            }
    }
    free(stack);
    free(seen);
    free(tb);
    free(ta);
    return found;
}

static bool
any_overlap(const struct policy_globs *mine, size_t i, const struct policy_globs *theirs)
{
    for (size_t j = 0; j < theirs->count; j++)
        if (exceptions_globs_overlap(mine->items[i], theirs->items[j]))
            return true;
    return false;
}

static const struct policy_rule *
rule_named(const struct policy_spec *s, const char *name)
{
    for (size_t i = 0; i < s->rule_count; i++)
        if (strcmp(s->rules[i].name, name) == 0)
            return &s->rules[i];
    return NULL;
}

// Reports each of the exception's globs (tables or namespaces) that meets none of the known
// rules' globs of the same kind.
static void
lint_globs(const struct exceptions *x, const struct exception *e, const struct policy_spec *s,
           bool tables, struct diag *errors)
{
    const struct policy_globs *mine = tables ? &e->tables : &e->namespaces;
    for (size_t i = 0; i < mine->count; i++) {
        bool meets = false, known = false;
        for (size_t r = 0; r < e->rule_count && !meets; r++) {
            const struct policy_rule *rule = rule_named(s, e->rules[r]);
            if (rule == NULL)
                continue;
            known = true;
            meets = any_overlap(mine, i, tables ? &rule->tables : &rule->namespaces);
        }
        if (known && !meets)
            diag_add(errors, x->file, e->line, 0,
                     "exception \"%s\": %s pattern \"%s\" can never match a %s of the rules it "
                     "waives, so it waives nothing there",
                     e->name, tables ? "tables" : "namespaces", mine->items[i],
                     tables ? "table" : "namespace");
    }
}

void
exceptions_lint(const struct exceptions *x, const struct policy_spec *s, long long now,
                struct diag *errors, struct diag *warnings)
{
    const char **names = xcalloc(s->rule_count ? s->rule_count : 1, sizeof *names);
    for (size_t i = 0; i < s->rule_count; i++)
        names[i] = s->rules[i].name;
    for (size_t k = 0; k < x->count; k++) {
        const struct exception *e = &x->items[k];
        for (size_t r = 0; r < e->rule_count; r++) {
            if (rule_named(s, e->rules[r]) != NULL)
                continue;
            const char *near = policy_suggest(e->rules[r], names, s->rule_count);
            diag_add(errors, x->file, e->line, 0,
                     "exception \"%s\": unknown rule \"%s\"%s%s%s (policy \"%s\" has no such "
                     "rule)",
                     e->name, e->rules[r], near ? " (did you mean \"" : "", near ? near : "",
                     near ? "\"?)" : "", s->name);
        }
        lint_globs(x, e, s, true, errors);
        lint_globs(x, e, s, false, errors);
        if (now >= e->expires)
            diag_add(warnings, x->file, e->line, 0,
                     "exception \"%s\": expired at %s; it waives nothing now (remove it)", e->name,
                     e->expires_text);
        else if (e->expires - now > (long long)s->exceptions_max_days * 86400)
            diag_add(errors, x->file, e->line, 0,
                     "exception \"%s\": expires %s, more than spec.exceptionsMaxDays (%u) days "
                     "ahead: the server does not honour it",
                     e->name, e->expires_text, s->exceptions_max_days);
    }
    free(names);
}

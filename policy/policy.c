// SPDX-License-Identifier: Apache-2.0
// The protection policy: YAML loading through libyaml, shape checks driven by tables of allowed
// keys, semantic checks, and the reference-counted object the server swaps on reload.
#include "policy/policy.h"

#include "policy/kinds.h"

#include <errno.h>
#include <stdarg.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "util/file.h"
#include "util/jsonr.h"
#include "util/xalloc.h"

const char *const POLICY_SETTING_NAMES[POLICY_SETTING_COUNT] = {"deletionProtection",
                                                                "pointInTimeRecovery"};
const char *const POLICY_TRANSITION_NAMES[POLICY_TRANSITION_COUNT] = {"remove", "rename", "delete"};

#define POLICY_MAX_FILE (4u << 20)
// Aliases make a YAML tree a graph; walking it is bounded so "billion laughs" cannot stall a load.
// The bound grows with the document's own nodes, so only alias expansion can reach it.
#define POLICY_MAX_VISITS 200000
#define POLICY_VISITS_PER_NODE 16
// libyaml's scanner and composer slow down with nesting (a megabyte of "[" takes minutes), so a
// first pass over the parser's events refuses what no policy needs before a document is built.
#define POLICY_MAX_DEPTH 64
#define POLICY_MAX_NODES 200000

struct policy {
    atomic_uint refs;
    struct policy_spec spec;
    char sha256[65];
};

// ---- The shape tables -------------------------------------------------------------------------

enum ftype { F_STR, F_BOOL, F_STRLIST, F_MAP, F_MAPLIST, F_ANYMAP, F_UINT };

struct field {
    const char *key;
    enum ftype type;
    bool required;
};

static const char *const FTYPE_NAMES[] = {
    [F_STR] = "a string",
    [F_BOOL] = "a boolean (true or false)",
    [F_STRLIST] = "a list of strings",
    [F_MAP] = "a mapping",
    [F_MAPLIST] = "a list of mappings",
    [F_ANYMAP] = "a mapping",
    [F_UINT] = "a whole number",
};

enum { R_APIVERSION, R_KIND, R_METADATA, R_SPEC, R_N };
static const struct field ROOT_FIELDS[R_N] = {
    {"apiVersion", F_STR, true},
    {"kind", F_STR, true},
    {"metadata", F_MAP, true},
    {"spec", F_MAP, true},
};

enum { M_NAME, M_LABELS, M_ANNOTATIONS, M_N };
static const struct field META_FIELDS[M_N] = {
    {"name", F_STR, true}, {"labels", F_ANYMAP, false}, {"annotations", F_ANYMAP, false}};

enum {
    S_COMPONENTS,
    S_TRAIT,
    S_EXCLUDE,
    S_RULES,
    S_PROFILES,
    S_EXCEPTIONS_MAX_DAYS,
    S_RESOURCES,
    S_N
};
static const struct field SPEC_FIELDS[S_N] = {
    {"components", F_MAP, false},    {"trait", F_MAP, false},
    {"exclude", F_MAP, false},       {"rules", F_MAPLIST, false},
    {"profiles", F_MAPLIST, false},  {"exceptionsMaxDays", F_UINT, false},
    {"resources", F_MAPLIST, false},
};

// One spec.resources row. The two protection paths follow in enum policy_setting order.
enum { G_APIVERSION, G_KIND, G_TABLENAMEFROM, G_DELETIONPROTECTIONFROM, G_PITRFROM, G_N };
static const struct field RESOURCE_FIELDS[G_N] = {
    {"apiVersion", F_STR, true},
    {"kind", F_STR, true},
    {"tableNameFrom", F_STR, true},
    {"deletionProtectionFrom", F_STR, true},
    {"pointInTimeRecoveryFrom", F_STR, true},
};

enum { C_TYPES, C_TABLENAMEFROM, C_N };
static const struct field COMPONENTS_FIELDS[C_N] = {{"types", F_STRLIST, false},
                                                    {"tableNameFrom", F_STR, false}};

enum { T_TYPE, T_DEFAULTS, T_N };
static const struct field TRAIT_FIELDS[T_N] = {{"type", F_STR, false}, {"defaults", F_MAP, false}};

enum { X_NAMESPACES, X_USERS, X_GROUPS, X_N };
static const struct field EXCLUDE_FIELDS[X_N] = {
    {"namespaces", F_STRLIST, false}, {"users", F_STRLIST, false}, {"groups", F_STRLIST, false}};

enum {
    U_NAME,
    U_TABLES,
    U_NAMESPACES,
    U_REQUIRE,
    U_FORBID,
    U_ACTION,
    U_MESSAGE,
    U_DESCRIPTION,
    U_N
};
static const struct field RULE_FIELDS[U_N] = {
    {"name", F_STR, true},     {"tables", F_STRLIST, true},   {"namespaces", F_STRLIST, false},
    {"require", F_MAP, false}, {"forbid", F_STRLIST, false},  {"action", F_STR, false},
    {"message", F_STR, false}, {"description", F_STR, false},
};

enum { P_NAME, P_TABLES, P_NAMESPACES, P_DEFAULTS, P_INJECT, P_RETAIN, P_DESCRIPTION, P_N };
static const struct field PROFILE_FIELDS[P_N] = {
    {"name", F_STR, true},         {"tables", F_STRLIST, true}, {"namespaces", F_STRLIST, false},
    {"defaults", F_MAP, false},    {"inject", F_BOOL, false},   {"retain", F_BOOL, false},
    {"description", F_STR, false},
};

static const char *const ACTION_NAMES[] = {
    [POLICY_DENY] = "deny", [POLICY_WARN] = "warn", [POLICY_AUDIT] = "audit"};

const char *const POLICY_PLACEHOLDER_NAMES[POLICY_PLACEHOLDER_COUNT] = {
    [POLICY_PH_APPLICATION] = "application",
    [POLICY_PH_NAMESPACE] = "namespace",
    [POLICY_PH_COMPONENT] = "component",
    [POLICY_PH_TABLE] = "table",
    [POLICY_PH_RULE] = "rule",
    [POLICY_PH_PATTERN] = "pattern",
    [POLICY_PH_TRANSITION] = "transition"};

// ---- Load context ----------------------------------------------------------------------------

struct ctx {
    yaml_document_t *doc;
    const char *file;
    struct diag *diags;
    size_t errors;
    size_t visits, max_visits;
};

static void err_at(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
err_at(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    char raw[768], msg[768 * 4];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    // Quoted values may hold line breaks; a diagnostic stays on one line.
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
        if (*p == '\n')
            o += (size_t)snprintf(msg + o, sizeof msg - o, "\\n");
        else if (*p < 0x20 || *p == 0x7f)
            o += (size_t)snprintf(msg + o, sizeof msg - o, "\\x%02x", *p);
        else
            msg[o++] = (char)*p;
    }
    msg[o] = '\0';
    diag_add(c->diags, c->file, n->start_mark.line + 1, n->start_mark.column + 1, "%s", msg);
    c->errors++;
}

static yaml_node_t *
node(struct ctx *c, int id)
{
    c->visits++;
    return yaml_document_get_node(c->doc, id);
}

// Past the walking budget every loop stops early; the load then fails with one diagnostic.
static bool
over_budget(const struct ctx *c)
{
    return c->visits > c->max_visits;
}

static const char *
scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static const char *
node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static bool
plain(const yaml_node_t *n)
{
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool
is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || !plain(n))
        return false;
    const char *s = scalar(n);
    return *s == '\0' || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0;
}

// The YAML 1.2 core-schema spellings of a boolean.
static int
bool_word(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

// Parses a YAML 1.2 core-schema boolean; only plain scalars count (a quoted "true" is a string).
static int
as_bool(const yaml_node_t *n, bool *out)
{
    if (n->type != YAML_SCALAR_NODE || !plain(n))
        return -1;
    return bool_word(scalar(n), out);
}

static size_t
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

// The closest of `names` to `key` within two edits (or differing only in case), or NULL.
static const char *
suggest_name(const char *key, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = strcasecmp(key, names[i]) == 0 ? 0 : edit_distance(key, names[i]);
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    return best;
}

static const char *
suggest(const char *key, const struct field *fields, size_t n)
{
    const char *names[16];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 16; i++)
        names[k++] = fields[i].key;
    return suggest_name(key, names, k);
}

// "a, b or c": the keys a mapping takes, for a diagnostic.
static void
key_list(const struct field *fields, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + used, len - used, "%s%s", sep, fields[i].key);
        used += w > 0 ? (size_t)w : 0;
    }
}

static bool
type_ok(struct ctx *c, const yaml_node_t *v, enum ftype t, const char *what, const char *key)
{
    bool b;
    switch (t) {
    case F_STR:
        return v->type == YAML_SCALAR_NODE && !is_null(v);
    case F_BOOL:
        return as_bool(v, &b) == 0;
    case F_MAP:
    case F_ANYMAP:
        return v->type == YAML_MAPPING_NODE;
    case F_UINT:
        return v->type == YAML_SCALAR_NODE && plain(v) && scalar(v)[0] != '\0' &&
               strspn(scalar(v), "0123456789") == strlen(scalar(v)) && strlen(scalar(v)) < 10;
    case F_STRLIST:
    case F_MAPLIST:
        if (v->type != YAML_SEQUENCE_NODE)
            return false;
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             it < v->data.sequence.items.top && !over_budget(c); it++) {
            const yaml_node_t *item = node(c, *it);
            bool ok = t == F_STRLIST ? item->type == YAML_SCALAR_NODE && !is_null(item)
                                     : item->type == YAML_MAPPING_NODE;
            if (!ok) {
                err_at(c, item, "%s: \"%s\" item %zu must be %s, got %s", what, key,
                       (size_t)(it - v->data.sequence.items.start) + 1,
                       t == F_STRLIST ? "a string" : "a mapping",
                       is_null(item) ? "null" : node_kind(item));
            }
        }
        return true;
    }
    return false;
}

// Checks one mapping against its table: unknown keys (with a suggestion), duplicate keys, wrong
// types and missing required keys are reported; found[i] receives the value node of fields[i].
// Explains a value of the wrong type: what it is, and for a few common slips how to write it.
static void
wrong_type(struct ctx *c, const yaml_node_t *v, const char *what, const struct field *f)
{
    const char *expected = FTYPE_NAMES[f->type];
    if (v->type != YAML_SCALAR_NODE || is_null(v)) {
        err_at(c, v, "%s: \"%s\" must be %s, got %s", what, f->key, expected,
               is_null(v) ? "null" : node_kind(v));
        return;
    }
    const char *s = scalar(v);
    static const char *const yaml11[] = {"yes", "no", "on", "off", "y", "n"};
    const char *hint = "";
    if (f->type == F_STRLIST)
        hint = " (write a list: [\"...\"])";
    for (size_t i = 0; f->type == F_BOOL && i < sizeof yaml11 / sizeof *yaml11; i++)
        if (strcasecmp(s, yaml11[i]) == 0)
            hint = " (yes/no/on/off are strings in YAML 1.2: write true or false)";
    bool b;
    if (f->type == F_BOOL && !plain(v) && bool_word(s, &b) == 0)
        hint = " (remove the quotes)";
    err_at(c, v, "%s: \"%s\" must be %s, got %s\"%.80s\"%s", what, f->key, expected,
           plain(v) ? "" : "the quoted string ", s, hint);
}

// Checks one mapping against its table: unknown keys (with a suggestion), duplicate keys, wrong
// types and missing required keys are reported; found[i] receives the value node of fields[i].
static void
check_map(struct ctx *c, const yaml_node_t *map, const char *what, const struct field *fields,
          size_t n, const yaml_node_t **found)
{
    // A key written (even with a bad value) or suggested for a typo is not also "missing".
    bool present[16] = {false}, suggested[16] = {false};
    for (size_t i = 0; i < n; i++)
        found[i] = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top && !over_budget(c); p++) {
        const yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        if (k->type != YAML_SCALAR_NODE) {
            err_at(c, k, "%s: keys must be strings, got %s", what, node_kind(k));
            continue;
        }
        size_t i = 0;
        while (i < n && strcmp(fields[i].key, scalar(k)) != 0)
            i++;
        if (i == n) {
            const char *s = suggest(scalar(k), fields, n);
            if (s != NULL) {
                err_at(c, k, "%s: unknown key \"%s\" (did you mean \"%s\"?)", what, scalar(k), s);
                for (size_t j = 0; j < n && j < 16; j++)
                    suggested[j] |= fields[j].key == s;
            } else {
                char keys[256];
                key_list(fields, n, keys, sizeof keys);
                err_at(c, k, "%s: unknown key \"%s\" (expected %s)", what, scalar(k), keys);
            }
            continue;
        }
        if (i < 16 && present[i]) {
            err_at(c, k, "%s: duplicate key \"%s\"", what, scalar(k));
            continue;
        }
        if (i < 16)
            present[i] = true;
        if (!type_ok(c, v, fields[i].type, what, fields[i].key)) {
            wrong_type(c, v, what, &fields[i]);
            continue;
        }
        found[i] = v;
    }
    for (size_t i = 0; i < n && i < 16; i++) {
        if (fields[i].required && !present[i] && !suggested[i])
            err_at(c, map, "%s: missing required key \"%s\"", what, fields[i].key);
    }
}

// ---- Semantic checks -------------------------------------------------------------------------

// The compiled form of a glob (policy_globs_compile, below).
enum glob_kind { GLOB_FNMATCH, GLOB_LITERAL, GLOB_STARS };

struct policy_glob {
    char *lc;            // the glob lower-cased (GLOB_LITERAL, GLOB_STARS)
    size_t len;          // strlen(lc)
    size_t prefix;       // characters before the first '*'
    size_t suffix;       // characters after the last '*'
    size_t min;          // characters that are not '*': the shortest string it matches
    enum glob_kind kind; // how it is matched
};

// fnmatch accepts any string; a glob that cannot mean what its author wanted is refused here.
static const char *
glob_problem(const char *g)
{
    if (*g == '\0')
        return "is empty";
    for (const char *p = g; *p; p++) {
        if (*p == '\\') {
            if (p[1] == '\0')
                return "ends with a lone backslash";
            p++;
        } else if (*p == '[') {
            const char *q = p + 1;
            if (*q == '!' || *q == '^')
                q++;
            if (*q == ']')
                q++;
            while (*q && *q != ']')
                q++;
            if (*q != ']')
                return "has an unclosed \"[\"";
            p = q;
        }
    }
    return NULL;
}

static struct policy_globs
globs_from(struct ctx *c, const yaml_node_t *seq, const char *what)
{
    struct policy_globs g = {0};
    if (seq == NULL)
        return g;
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    g.items = xcalloc(n, sizeof *g.items);
    for (yaml_node_item_t *it = seq->data.sequence.items.start;
         it < seq->data.sequence.items.top && !over_budget(c); it++) {
        const yaml_node_t *item = node(c, *it);
        if (item->type != YAML_SCALAR_NODE || is_null(item))
            continue; // reported by the shape check
        const char *problem = glob_problem(scalar(item));
        if (problem != NULL)
            err_at(c, item, "%s: pattern \"%s\" %s", what, scalar(item), problem);
        g.items[g.count++] = xstrdup(scalar(item));
    }
    policy_globs_compile(&g);
    return g;
}

static struct policy_globs
globs_of(const char *const *items, size_t n)
{
    struct policy_globs g = {xcalloc(n, sizeof(char *)), n, NULL};
    for (size_t i = 0; i < n; i++)
        g.items[i] = xstrdup(items[i]);
    policy_globs_compile(&g);
    return g;
}

static void
globs_free(struct policy_globs *g)
{
    for (size_t i = 0; i < g->count; i++) {
        free(g->items[i]);
        if (g->compiled != NULL)
            free(g->compiled->one[i].lc);
    }
    free(g->items);
    free(g->compiled);
}

static void
check_template(struct ctx *c, const yaml_node_t *n, const char *what)
{
    const char *s = scalar(n);
    if (strcasestr(s, "immutable") != NULL)
        err_at(
            c, n,
            "%s: the message says \"immutable\": GitOps tools with force on delete and re-create "
            "an object whose change fails with that word (say \"cannot change\" instead)",
            what);
    for (const char *p = strchr(s, '{'); p != NULL; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        if (end == NULL) {
            err_at(c, n, "%s: unclosed \"{\" in message", what);
            return;
        }
        size_t len = (size_t)(end - p - 1), i = 0;
        const char *const *names = POLICY_PLACEHOLDER_NAMES;
        while (i < POLICY_PLACEHOLDER_COUNT &&
               !(strlen(names[i]) == len && strncmp(names[i], p + 1, len) == 0))
            i++;
        if (i == POLICY_PLACEHOLDER_COUNT) {
            char expected[160] = "", *q = expected;
            for (size_t k = 0; k < POLICY_PLACEHOLDER_COUNT; k++)
                q += snprintf(q, sizeof expected - (size_t)(q - expected), "%s{%s}", k ? " " : "",
                              names[k]);
            err_at(c, n, "%s: unknown placeholder \"{%.*s}\" in message (expected one of %s)", what,
                   (int)len, p + 1, expected);
        }
    }
}

static void
load_settings(struct ctx *c, const yaml_node_t *map, const char *what, int *out)
{
    struct field fields[POLICY_SETTING_COUNT];
    for (int s = 0; s < POLICY_SETTING_COUNT; s++)
        fields[s] = (struct field){POLICY_SETTING_NAMES[s], F_BOOL, false};
    const yaml_node_t *found[POLICY_SETTING_COUNT];
    check_map(c, map, what, fields, POLICY_SETTING_COUNT, found);
    for (int s = 0; s < POLICY_SETTING_COUNT; s++) {
        bool b;
        if (found[s] != NULL && as_bool(found[s], &b) == 0)
            out[s] = b;
    }
}

// True when `map` has `key`, whatever its value: a bad value was reported by the shape check.
static bool
has_key(struct ctx *c, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = node(c, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(scalar(k), key) == 0)
            return true;
    }
    return false;
}

static void
load_forbid(struct ctx *c, const yaml_node_t *seq, const char *what, struct policy_rule *r)
{
    for (yaml_node_item_t *it = seq->data.sequence.items.start;
         it < seq->data.sequence.items.top && !over_budget(c); it++) {
        const yaml_node_t *item = node(c, *it);
        if (item->type != YAML_SCALAR_NODE || is_null(item))
            continue; // reported by the shape check
        const char *t = scalar(item);
        size_t i = 0;
        while (i < POLICY_TRANSITION_COUNT && strcmp(t, POLICY_TRANSITION_NAMES[i]) != 0)
            i++;
        if (i == POLICY_TRANSITION_COUNT) {
            const char *s = suggest_name(t, POLICY_TRANSITION_NAMES, POLICY_TRANSITION_COUNT);
            err_at(c, item,
                   "%s: unknown transition \"%s\" in \"forbid\" (expected remove, rename or "
                   "delete%s%s%s)",
                   what, t, s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
        } else if (r->forbid & (1u << i)) {
            err_at(c, item, "%s: \"forbid\" names \"%s\" twice", what, t);
        } else {
            r->forbid |= 1u << i;
        }
    }
    if (seq->data.sequence.items.top == seq->data.sequence.items.start)
        err_at(c, seq, "%s: \"forbid\" names no transition (expected remove, rename and/or delete)",
               what);
}

// The tables (required, at least one) and namespaces (["*"] when absent) globs of a rule or a
// profile.
static void
load_scope(struct ctx *c, const yaml_node_t *tables_node, const yaml_node_t *ns_node,
           const char *what, struct policy_globs *tables, struct policy_globs *namespaces)
{
    *tables = globs_from(c, tables_node, what);
    if (tables_node != NULL && tables->count == 0)
        err_at(c, tables_node, "%s: \"tables\" must name at least one pattern", what);
    if (ns_node != NULL) {
        *namespaces = globs_from(c, ns_node, what);
    } else {
        static const char *const all[] = {"*"};
        *namespaces = globs_of(all, 1);
    }
}

// The string value of `key` in a mapping before its shape is checked (the last one written, as
// a diagnostic's subject), or NULL.
static const char *
peek_string(struct ctx *c, const yaml_node_t *map, const char *key)
{
    const char *found = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        if (k->type == YAML_SCALAR_NODE && strcmp(scalar(k), key) == 0 &&
            v->type == YAML_SCALAR_NODE && !is_null(v))
            found = scalar(v);
    }
    return found;
}

// Names a list entry in every diagnostic about it, even those found before its name is read.
static void
entry_label(struct ctx *c, const yaml_node_t *map, const char *kind, char *what, size_t len)
{
    const char *name = peek_string(c, map, "name");
    if (name != NULL)
        snprintf(what, len, "%s \"%.120s\"", kind, name);
}

static void
load_rule(struct ctx *c, const yaml_node_t *map, size_t index, struct policy_rule *r)
{
    char what[160];
    const yaml_node_t *f[U_N];
    snprintf(what, sizeof what, "rules[%zu]", index);
    entry_label(c, map, "rule", what, sizeof what);
    check_map(c, map, what, RULE_FIELDS, U_N, f);
    if (f[U_NAME] != NULL) {
        r->name = xstrdup(scalar(f[U_NAME]));
    } else {
        r->name = xasprintf("rules[%zu]", index);
    }
    load_scope(c, f[U_TABLES], f[U_NAMESPACES], what, &r->tables, &r->namespaces);
    for (int s = 0; s < POLICY_SETTING_COUNT; s++)
        r->require[s] = -1;
    if (f[U_REQUIRE] != NULL) {
        char rwhat[200];
        snprintf(rwhat, sizeof rwhat, "%s require", what);
        load_settings(c, f[U_REQUIRE], rwhat, r->require);
        bool any = false;
        for (int s = 0; s < POLICY_SETTING_COUNT; s++)
            any |= r->require[s] >= 0;
        if (!any && f[U_REQUIRE]->data.mapping.pairs.top == f[U_REQUIRE]->data.mapping.pairs.start)
            err_at(c, f[U_REQUIRE],
                   "%s: \"require\" names nothing to require (expected deletionProtection and/or "
                   "pointInTimeRecovery)",
                   what);
    }
    if (f[U_FORBID] != NULL)
        load_forbid(c, f[U_FORBID], what, r);
    if (f[U_REQUIRE] != NULL && f[U_FORBID] != NULL)
        err_at(c, f[U_FORBID],
               "%s: a rule has \"require\" or \"forbid\", not both (write two rules with the same "
               "tables)",
               what);
    else if (f[U_REQUIRE] == NULL && f[U_FORBID] == NULL && !has_key(c, map, "require") &&
             !has_key(c, map, "forbid"))
        err_at(c, map,
               "%s: missing \"require\" (settings a table must have) or \"forbid\" (transitions: "
               "remove, rename, delete)",
               what);
    r->action = POLICY_DENY;
    if (f[U_ACTION] != NULL) {
        const char *a = scalar(f[U_ACTION]);
        size_t i = 0;
        while (i < 3 && strcmp(a, ACTION_NAMES[i]) != 0)
            i++;
        const char *s = i == 3 ? suggest_name(a, ACTION_NAMES, 3) : NULL;
        if (i == 3)
            err_at(c, f[U_ACTION], "%s: unknown action \"%s\" (expected deny, warn or audit%s%s%s)",
                   what, a, s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
        else
            r->action = (enum policy_action)i;
    }
    if (f[U_MESSAGE] != NULL) {
        check_template(c, f[U_MESSAGE], what);
        r->message = xstrdup(scalar(f[U_MESSAGE]));
    }
}

static void
load_table_name_from(struct ctx *c, const yaml_node_t *n, struct policy_spec *s)
{
    const char *path = n ? scalar(n) : "properties.tableName";
    s->table_name_from = xstrdup(path);
    size_t depth = 1;
    for (const char *p = path; *p; p++)
        depth += *p == '.';
    s->table_name_path = xcalloc(depth, sizeof(char *));
    const char *seg = path;
    for (size_t i = 0; i < depth; i++) {
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        if (len == 0 && n != NULL) {
            err_at(c, n, "components: \"tableNameFrom\" \"%s\" has an empty path segment", path);
        }
        s->table_name_path[i] = xstrndup(seg, len);
        seg = dot ? dot + 1 : seg + len;
    }
    s->table_name_depth = depth;
}

// Splits a dotted path; an empty segment ("spec..x", ".x") is reported at `n`.
static void
load_path(struct ctx *c, const yaml_node_t *n, const char *what, const char *key,
          struct policy_path *out)
{
    const char *path = scalar(n);
    out->text = xstrdup(path);
    out->depth = 1;
    for (const char *p = path; *p; p++)
        out->depth += *p == '.';
    out->segments = xcalloc(out->depth + 1, sizeof(char *)); // NULL-terminated for kinds_row
    const char *seg = path;
    bool empty = false;
    for (size_t i = 0; i < out->depth; i++) {
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        empty |= len == 0;
        out->segments[i] = xstrndup(seg, len);
        seg = dot ? dot + 1 : seg + len;
    }
    if (empty)
        err_at(c, n, "%s: \"%s\" \"%s\" has an empty path segment (write e.g. spec.tableName)",
               what, key, path);
}

static void
path_free(struct policy_path *p)
{
    for (size_t i = 0; i < p->depth; i++)
        free(p->segments[i]);
    free(p->segments);
    free(p->text);
}

static void
load_resource(struct ctx *c, const yaml_node_t *map, size_t index, struct policy_resource *r)
{
    char what[160];
    const yaml_node_t *f[G_N];
    snprintf(what, sizeof what, "resources[%zu]", index);
    // Name the kind in every diagnostic about the row, even those found before it is read.
    const char *kind = peek_string(c, map, "kind");
    if (kind != NULL)
        snprintf(what, sizeof what, "resources[%zu] (%.100s)", index, kind);
    check_map(c, map, what, RESOURCE_FIELDS, G_N, f);
    r->api_version = xstrdup(f[G_APIVERSION] ? scalar(f[G_APIVERSION]) : "");
    r->kind = xstrdup(f[G_KIND] ? scalar(f[G_KIND]) : "");
    if (f[G_APIVERSION] != NULL) {
        // The API server sends "group/version", or "version" alone for the core group.
        const char *slash = strchr(r->api_version, '/');
        if (slash == r->api_version || (slash && (slash[1] == '\0' || strchr(slash + 1, '/'))))
            err_at(c, f[G_APIVERSION],
                   "%s: \"apiVersion\" \"%s\" is not group/version (e.g. "
                   "dynamodb.services.k8s.aws/v1alpha1)",
                   what, r->api_version);
    }
    if (f[G_KIND] != NULL && strcmp(r->kind, "Application") == 0 &&
        strncmp(r->api_version, "core.oam.dev/", 13) == 0)
        err_at(c, f[G_KIND],
               "%s: Applications are guarded through \"components\", not \"resources\"", what);
    const struct {
        int field;
        struct policy_path *out;
    } paths[] = {{G_TABLENAMEFROM, &r->table_name},
                 {G_DELETIONPROTECTIONFROM, &r->settings[POLICY_DELETION_PROTECTION]},
                 {G_PITRFROM, &r->settings[POLICY_PITR]}};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (f[paths[i].field] != NULL)
            load_path(c, f[paths[i].field], what, RESOURCE_FIELDS[paths[i].field].key,
                      paths[i].out);
}

// Two rows for one apiVersion and kind would make the first one silently win.
static void
report_duplicate_resources(struct ctx *c, const struct policy_resource *rows,
                           const yaml_node_t *const *nodes, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(rows[i].kind, rows[j].kind) == 0 && rows[i].kind[0] != '\0' &&
                strcmp(rows[i].api_version, rows[j].api_version) == 0) {
                err_at(c, nodes[i],
                       "resources[%zu] (%s): %s %s is already guarded by resources[%zu] (one row "
                       "per apiVersion and kind)",
                       i, rows[i].kind, rows[i].api_version, rows[i].kind, j);
                break;
            }
}

static void
load_resources(struct ctx *c, const yaml_node_t *seq, struct policy_spec *s)
{
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    s->resources = xcalloc(n ? n : 1, sizeof *s->resources);
    const yaml_node_t **nodes = xcalloc(n ? n : 1, sizeof *nodes);
    for (size_t i = 0; i < n && !over_budget(c); i++) {
        const yaml_node_t *item = node(c, seq->data.sequence.items.start[i]);
        if (item->type != YAML_MAPPING_NODE)
            continue; // reported by the shape check
        nodes[s->resource_count] = item;
        load_resource(c, item, i, &s->resources[s->resource_count++]);
    }
    report_duplicate_resources(c, s->resources, nodes, s->resource_count);
    s->resource_rows = kinds_from_resources(s->resources, s->resource_count);
    free(nodes);
}

struct named_rule {
    const char *name;
    size_t index;
};

static int
cmp_named_rule(const void *a, const void *b)
{
    const struct named_rule *x = a, *y = b;
    int d = strcmp(x->name, y->name);
    return d ? d : x->index < y->index ? -1 : x->index > y->index;
}

// Every entry whose name an earlier one already has (`kind` is "rule" or "profile"); sorted, so a
// large policy stays linear-ish. names[i] is the name of the entry written at nodes[i].
static void
report_duplicate_names(struct ctx *c, const char *kind, const char *const *names,
                       const yaml_node_t *const *nodes, size_t n)
{
    struct named_rule *v = xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (struct named_rule){names[i], i};
    qsort(v, n, sizeof *v, cmp_named_rule);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i - 1].name, v[i].name) == 0)
            err_at(c, nodes[v[i].index], "%s \"%s\": duplicate %s name (%s names must be unique)",
                   kind, v[i].name, kind, kind);
    free(v);
}

static void
load_profile(struct ctx *c, const yaml_node_t *map, size_t index, const struct policy_spec *s,
             struct policy_profile *pr)
{
    char what[160];
    const yaml_node_t *f[P_N];
    snprintf(what, sizeof what, "profiles[%zu]", index);
    entry_label(c, map, "profile", what, sizeof what);
    check_map(c, map, what, PROFILE_FIELDS, P_N, f);
    pr->name = f[P_NAME] ? xstrdup(scalar(f[P_NAME])) : xasprintf("profiles[%zu]", index);
    load_scope(c, f[P_TABLES], f[P_NAMESPACES], what, &pr->tables, &pr->namespaces);
    bool b = true;
    pr->inject = f[P_INJECT] == NULL || (as_bool(f[P_INJECT], &b) == 0 && b);
    pr->retain = f[P_RETAIN] != NULL && as_bool(f[P_RETAIN], &b) == 0 && b;
    for (int k = 0; k < POLICY_SETTING_COUNT; k++)
        pr->defaults[k] = pr->inject ? s->defaults[k] : -1;
    if (f[P_DEFAULTS] == NULL)
        return;
    if (!pr->inject) {
        err_at(c, f[P_DEFAULTS],
               "%s: \"defaults\" with \"inject: false\" has no effect (no trait is injected): "
               "remove one of them",
               what);
        return;
    }
    char dwhat[200];
    snprintf(dwhat, sizeof dwhat, "%s defaults", what);
    load_settings(c, f[P_DEFAULTS], dwhat, pr->defaults);
}

// Whether a string whose first byte is ch may match a glob of g.
static bool
may_start(const struct policy_globs *g, unsigned char ch)
{
    return policy_globs_may_match(g, (const char[]){(char)ch, '\0'});
}

// Fills s->profile_first_at, profile_first and profile_anywhere (see policy.h). Every table is
// looked up in every profile, first match wins: with a hundred team profiles that was a hundred
// tries per table even where the first byte rules all but the shipped ones out. A profile whose
// globs may start anywhere is listed once (not 256 times), so the index stays within a few
// entries per glob.
static void
index_profiles(struct policy_spec *s)
{
    size_t n = s->profile_count, total = 0;
    bool *anywhere = xcalloc(n ? n : 1, sizeof *anywhere);
    s->profile_first_at = xcalloc(257, sizeof *s->profile_first_at);
    for (size_t i = 0; i < n; i++) {
        size_t starts = 0;
        for (unsigned ch = 0; ch < 256; ch++)
            starts += may_start(&s->profiles[i].tables, (unsigned char)ch);
        anywhere[i] = starts == 256;
        s->profile_anywhere_count += anywhere[i];
    }
    for (unsigned ch = 0; ch < 256; ch++) {
        s->profile_first_at[ch] = total;
        for (size_t i = 0; i < n; i++)
            total += !anywhere[i] && may_start(&s->profiles[i].tables, (unsigned char)ch);
    }
    s->profile_first_at[256] = total;
    s->profile_first = xcalloc(total ? total : 1, sizeof *s->profile_first);
    s->profile_anywhere =
        xcalloc(s->profile_anywhere_count ? s->profile_anywhere_count : 1, sizeof(size_t));
    size_t k = 0, a = 0;
    for (unsigned ch = 0; ch < 256; ch++)
        for (size_t i = 0; i < n; i++)
            if (!anywhere[i] && may_start(&s->profiles[i].tables, (unsigned char)ch))
                s->profile_first[k++] = i;
    for (size_t i = 0; i < n; i++)
        if (anywhere[i])
            s->profile_anywhere[a++] = i;
    free(anywhere);
}

static void
load_profiles(struct ctx *c, const yaml_node_t *list, struct policy_spec *s)
{
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    s->profiles = xcalloc(n ? n : 1, sizeof *s->profiles);
    const yaml_node_t **nodes = xcalloc(n ? n : 1, sizeof *nodes);
    const char **names = xcalloc(n ? n : 1, sizeof *names);
    for (size_t i = 0; i < n && !over_budget(c); i++) {
        const yaml_node_t *item = node(c, list->data.sequence.items.start[i]);
        if (item->type != YAML_MAPPING_NODE)
            continue; // reported by the shape check
        nodes[s->profile_count] = item;
        load_profile(c, item, i, s, &s->profiles[s->profile_count]);
        names[s->profile_count] = s->profiles[s->profile_count].name;
        s->profile_count++;
    }
    report_duplicate_names(c, "profile", names, nodes, s->profile_count);
    free(names);
    free(nodes);
    index_profiles(s);
}

static void
load_spec(struct ctx *c, const yaml_node_t *spec, struct policy_spec *s)
{
    const yaml_node_t *f[S_N];
    check_map(c, spec, "spec", SPEC_FIELDS, S_N, f);

    const yaml_node_t *cf[C_N] = {0};
    if (f[S_COMPONENTS] != NULL)
        check_map(c, f[S_COMPONENTS], "components", COMPONENTS_FIELDS, C_N, cf);
    if (cf[C_TYPES] != NULL) {
        s->component_types = globs_from(c, cf[C_TYPES], "components");
        if (s->component_types.count == 0)
            err_at(c, cf[C_TYPES], "components: \"types\" must name at least one component type");
    } else {
        static const char *const types[] = {"aws-dynamodb-kro"};
        s->component_types = globs_of(types, 1);
    }
    load_table_name_from(c, cf[C_TABLENAMEFROM], s);

    const yaml_node_t *tf[T_N] = {0};
    if (f[S_TRAIT] != NULL)
        check_map(c, f[S_TRAIT], "trait", TRAIT_FIELDS, T_N, tf);
    s->trait_type = xstrdup(tf[T_TYPE] ? scalar(tf[T_TYPE]) : "dynamodb-protection-kro");
    int defaults[POLICY_SETTING_COUNT] = {1, 1};
    if (tf[T_DEFAULTS] != NULL)
        load_settings(c, tf[T_DEFAULTS], "trait defaults", defaults);
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        s->defaults[i] = defaults[i] == 1;

    const yaml_node_t *xf[X_N] = {0};
    if (f[S_EXCLUDE] != NULL)
        check_map(c, f[S_EXCLUDE], "exclude", EXCLUDE_FIELDS, X_N, xf);
    s->exclude_namespaces = globs_from(c, xf[X_NAMESPACES], "exclude");
    s->exclude_users = globs_from(c, xf[X_USERS], "exclude");
    s->exclude_groups = globs_from(c, xf[X_GROUPS], "exclude");

    if (f[S_PROFILES] != NULL)
        load_profiles(c, f[S_PROFILES], s);
    s->exceptions_max_days = POLICY_EXCEPTIONS_MAX_DAYS;
    if (f[S_EXCEPTIONS_MAX_DAYS] != NULL) {
        unsigned long days = strtoul(scalar(f[S_EXCEPTIONS_MAX_DAYS]), NULL, 10);
        if (days == 0 || days > 3660)
            err_at(c, f[S_EXCEPTIONS_MAX_DAYS],
                   "spec: \"exceptionsMaxDays\" must be between 1 and 3660, got %s",
                   scalar(f[S_EXCEPTIONS_MAX_DAYS]));
        s->exceptions_max_days = (unsigned)days;
    }
    if (f[S_RESOURCES] != NULL)
        load_resources(c, f[S_RESOURCES], s);

    if (f[S_RULES] == NULL)
        return;
    const yaml_node_t *rules = f[S_RULES];
    size_t n = (size_t)(rules->data.sequence.items.top - rules->data.sequence.items.start);
    s->rules = xcalloc(n, sizeof *s->rules);
    const yaml_node_t **nodes = xcalloc(n, sizeof *nodes);
    const char **names = xcalloc(n ? n : 1, sizeof *names);
    for (size_t i = 0; i < n && !over_budget(c); i++) {
        const yaml_node_t *item = node(c, rules->data.sequence.items.start[i]);
        if (item->type != YAML_MAPPING_NODE)
            continue; // reported by the shape check
        nodes[s->rule_count] = item;
        load_rule(c, item, i, &s->rules[s->rule_count]);
        names[s->rule_count] = s->rules[s->rule_count].name;
        s->rule_count++;
    }
    report_duplicate_names(c, "rule", names, nodes, s->rule_count);
    free(names);
    free(nodes);
}

static void
load_root(struct ctx *c, const yaml_node_t *root, struct policy_spec *s)
{
    if (root->type != YAML_MAPPING_NODE) {
        err_at(c, root,
               "policy: expected a mapping with apiVersion, kind, metadata and spec, got %s",
               node_kind(root));
        return;
    }
    const yaml_node_t *f[R_N];
    check_map(c, root, "policy", ROOT_FIELDS, R_N, f);
    if (f[R_APIVERSION] != NULL && strcmp(scalar(f[R_APIVERSION]), "tableguard.io/v1") != 0)
        err_at(c, f[R_APIVERSION],
               "policy: unsupported apiVersion \"%s\" (expected \"tableguard.io/v1\")",
               scalar(f[R_APIVERSION]));
    if (f[R_KIND] != NULL && strcmp(scalar(f[R_KIND]), "ProtectionPolicy") != 0)
        err_at(c, f[R_KIND], "policy: unsupported kind \"%s\" (expected \"ProtectionPolicy\")",
               scalar(f[R_KIND]));
    if (f[R_METADATA] != NULL) {
        const yaml_node_t *mf[M_N];
        check_map(c, f[R_METADATA], "metadata", META_FIELDS, M_N, mf);
        if (mf[M_NAME] != NULL)
            s->name = xstrdup(scalar(mf[M_NAME]));
    }
    if (f[R_SPEC] != NULL)
        load_spec(c, f[R_SPEC], s);
    else
        load_table_name_from(c, NULL, s);
}

// ---- Object lifetime ---------------------------------------------------------------------------

static void
spec_free(struct policy_spec *s)
{
    free(s->name);
    globs_free(&s->component_types);
    for (size_t i = 0; i < s->table_name_depth; i++)
        free(s->table_name_path[i]);
    free(s->table_name_path);
    free(s->table_name_from);
    free(s->trait_type);
    globs_free(&s->exclude_namespaces);
    globs_free(&s->exclude_users);
    globs_free(&s->exclude_groups);
    for (size_t i = 0; i < s->rule_count; i++) {
        struct policy_rule *r = &s->rules[i];
        free(r->name);
        globs_free(&r->tables);
        globs_free(&r->namespaces);
        free(r->message);
    }
    free(s->rules);
    for (size_t i = 0; i < s->profile_count; i++) {
        struct policy_profile *pr = &s->profiles[i];
        free(pr->name);
        globs_free(&pr->tables);
        globs_free(&pr->namespaces);
    }
    free(s->profiles);
    free(s->profile_first_at);
    free(s->profile_first);
    free(s->profile_anywhere);
    for (size_t i = 0; i < s->resource_count; i++) {
        struct policy_resource *r = &s->resources[i];
        free(r->api_version);
        free(r->kind);
        path_free(&r->table_name);
        for (int k = 0; k < POLICY_SETTING_COUNT; k++)
            path_free(&r->settings[k]);
    }
    free(s->resources);
    free(s->resource_rows);
}

void
policy_digest(const char *buf, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        mdlen = 0;
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[mdlen ? 64 : 0] = '\0';
}

// The limits on a stream's shape: nesting and node count, over every document of the stream.
struct bounds {
    size_t depth, nodes;
};

// Called on each event before it is composed, so the cost of refusing a hostile file is bounded by
// the limits, not by the file. Returns -1, with a diagnostic, at the first event past a limit.
static int
bounds_check(struct bounds *b, const yaml_event_t *ev, const char *file, const char *what,
             struct diag *diags)
{
    yaml_event_type_t t = ev->type;
    yaml_mark_t at = ev->start_mark;
    if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT)
        b->depth--;
    if (t != YAML_SEQUENCE_START_EVENT && t != YAML_MAPPING_START_EVENT && t != YAML_SCALAR_EVENT &&
        t != YAML_ALIAS_EVENT)
        return 0;
    if ((t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) &&
        ++b->depth > POLICY_MAX_DEPTH) {
        diag_add(diags, file, at.line + 1, at.column + 1,
                 "%s: nested deeper than %d levels; a %s needs a handful", what, POLICY_MAX_DEPTH,
                 what);
        return -1;
    }
    if (++b->nodes > POLICY_MAX_NODES) {
        diag_add(diags, file, at.line + 1, at.column + 1,
                 "%s: more than %d YAML nodes; split the rules or simplify their lists", what,
                 POLICY_MAX_NODES);
        return -1;
    }
    return 0;
}

// Why a document did not load, as libyaml states it (a syntax error, or an alias error).
struct yaml_problem {
    const char *problem, *context;
    yaml_mark_t problem_mark, context_mark;
};

// A composed document: libyaml's node structure, so that the checks read it through libyaml's
// accessors, but its item lists, pair lists, scalar values and tags live in chunks freed at once
// (yaml_parser_load's document takes two to three allocations per node, and as many frees).
// Only doc_free frees it; never yaml_document_delete.
struct chunk {
    struct chunk *next;
    size_t used, size;
    _Alignas(max_align_t) unsigned char data[];
};

struct doc {
    yaml_document_t y;
    size_t node_cap;
    struct chunk *chunks;
};

static void *
doc_alloc(struct doc *d, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct chunk *c = d->chunks;
    if (c == NULL || c->size - c->used < n) {
        size_t size = n > 32768 ? n : 32768;
        c = xmalloc(sizeof *c + size);
        c->used = 0;
        c->size = size;
        c->next = d->chunks;
        d->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void
doc_free(struct doc *d)
{
    free(d->y.nodes.start);
    while (d->chunks != NULL) {
        struct chunk *next = d->chunks->next;
        free(d->chunks);
        d->chunks = next;
    }
    *d = (struct doc){0};
}

// A new node's id; its tag is the event's or, for none or "!", the default of its kind (as
// yaml_parser_load gives it).
static int
doc_add(struct doc *d, yaml_node_type_t type, const yaml_char_t *tag, const char *fallback,
        const yaml_event_t *ev)
{
    size_t count = (size_t)(d->y.nodes.top - d->y.nodes.start);
    if (count == d->node_cap) {
        d->node_cap = d->node_cap ? 2 * d->node_cap : 64;
        d->y.nodes.start = xrealloc(d->y.nodes.start, d->node_cap * sizeof *d->y.nodes.start);
        d->y.nodes.top = d->y.nodes.start + count;
        d->y.nodes.end = d->y.nodes.start + d->node_cap;
    }
    yaml_node_t *n = d->y.nodes.top++;
    *n = (yaml_node_t){.type = type, .start_mark = ev->start_mark, .end_mark = ev->end_mark};
    if (tag == NULL || strcmp((const char *)tag, "!") == 0)
        n->tag = (yaml_char_t *)fallback;
    else {
        size_t len = strlen((const char *)tag) + 1;
        n->tag = memcpy(doc_alloc(d, len), tag, len);
    }
    return (int)(count + 1);
}

struct anchor {
    char *name;
    int id;
    yaml_mark_t mark;
};

// An open collection's members so far (a mapping's as key, value, key, ...); the list moves into
// the document when the collection closes.
struct members {
    int *ids;
    size_t count, cap;
};

// Builds a document from the parser's events as yaml_parser_load does (the same nodes, tags,
// styles and marks; an anchor known from its node on), so that the events the limits are checked
// on are the ones composed and a file is scanned once, not twice. Anchors are found through a
// hash table (yaml_parser_load searches them one by one for every anchor and alias: minutes for
// a megabyte of them).
struct composer {
    struct doc *doc;            // NULL: not composing
    int open[POLICY_MAX_DEPTH]; // the collections being filled, innermost last
    struct members members[POLICY_MAX_DEPTH];
    size_t depth;
    struct anchor *anchors;
    size_t anchor_count, anchor_cap;
    size_t *slots; // 1 + an index into anchors, or 0: open addressing, a power of two long
    size_t slot_count;
    struct yaml_problem why;
};

static size_t
anchor_hash(const char *name)
{
    size_t h = 14695981039346656037u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211u;
    return h;
}

// The anchor named `name`, or the empty slot where it would go.
static size_t *
anchor_slot(const struct composer *m, const char *name)
{
    size_t mask = m->slot_count - 1;
    for (size_t i = anchor_hash(name) & mask;; i = (i + 1) & mask)
        if (m->slots[i] == 0 || strcmp(m->anchors[m->slots[i] - 1].name, name) == 0)
            return &m->slots[i];
}

static const struct anchor *
anchor_find(const struct composer *m, const char *name)
{
    if (m->anchor_count == 0)
        return NULL;
    size_t *slot = anchor_slot(m, name);
    return *slot ? &m->anchors[*slot - 1] : NULL;
}

static int
compose_anchor(struct composer *m, int id, const yaml_char_t *anchor, yaml_mark_t at)
{
    if (anchor == NULL)
        return 0;
    const struct anchor *first = anchor_find(m, (const char *)anchor);
    if (first != NULL) {
        m->why = (struct yaml_problem){.context = "found duplicate anchor; first occurrence",
                                       .context_mark = first->mark,
                                       .problem = "second occurrence",
                                       .problem_mark = at};
        return -1;
    }
    if (m->anchor_count == m->anchor_cap) {
        m->anchor_cap = m->anchor_cap ? 2 * m->anchor_cap : 8;
        m->anchors = xrealloc(m->anchors, m->anchor_cap * sizeof *m->anchors);
    }
    m->anchors[m->anchor_count++] = (struct anchor){xstrdup((const char *)anchor), id, at};
    if (2 * m->anchor_count > m->slot_count) {
        // Half full at most: every anchor goes into a table twice as large.
        free(m->slots);
        m->slot_count = m->slot_count ? 2 * m->slot_count : 16;
        m->slots = xcalloc(m->slot_count, sizeof *m->slots);
        for (size_t i = 0; i < m->anchor_count; i++)
            *anchor_slot(m, m->anchors[i].name) = i + 1;
    } else
        *anchor_slot(m, (const char *)anchor) = m->anchor_count;
    return 0;
}

// Adds node `id` (new, or an alias's target) to the open collection, if any.
static void
compose_attach(struct composer *m, int id)
{
    if (m->depth == 0)
        return;
    struct members *l = &m->members[m->depth - 1];
    if (l->count == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->ids = xrealloc(l->ids, l->cap * sizeof *l->ids);
    }
    l->ids[l->count++] = id;
}

// Closes the innermost collection: its members move into the document.
static void
compose_close(struct composer *m, const yaml_event_t *ev)
{
    struct members *l = &m->members[--m->depth];
    yaml_node_t *n = &m->doc->y.nodes.start[m->open[m->depth] - 1];
    n->end_mark = ev->end_mark;
    if (n->type == YAML_SEQUENCE_NODE) {
        yaml_node_item_t *items = doc_alloc(m->doc, l->count * sizeof *items);
        for (size_t i = 0; i < l->count; i++)
            items[i] = l->ids[i];
        n->data.sequence.items.start = items;
        n->data.sequence.items.top = n->data.sequence.items.end = items + l->count;
    } else {
        size_t pairs = l->count / 2; // the parser gives every key a value
        yaml_node_pair_t *p = doc_alloc(m->doc, pairs * sizeof *p);
        for (size_t i = 0; i < pairs; i++)
            p[i] = (yaml_node_pair_t){l->ids[2 * i], l->ids[2 * i + 1]};
        n->data.mapping.pairs.start = p;
        n->data.mapping.pairs.top = n->data.mapping.pairs.end = p + pairs;
    }
    l->count = 0;
}

// Composes one node event of the current document; bounds_check has run on it, so the nesting
// stays within POLICY_MAX_DEPTH.
static int
compose_event(struct composer *m, const yaml_event_t *ev)
{
    int id;
    const yaml_char_t *anchor;
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        id = doc_add(m->doc, YAML_SCALAR_NODE, ev->data.scalar.tag, YAML_DEFAULT_SCALAR_TAG, ev);
        size_t len = ev->data.scalar.length;
        yaml_char_t *value = doc_alloc(m->doc, len + 1);
        memcpy(value, ev->data.scalar.value, len);
        value[len] = '\0';
        yaml_node_t *n = &m->doc->y.nodes.start[id - 1];
        n->data.scalar.value = value;
        n->data.scalar.length = len;
        n->data.scalar.style = ev->data.scalar.style;
        anchor = ev->data.scalar.anchor;
        break;
    }
    case YAML_SEQUENCE_START_EVENT:
        id = doc_add(m->doc, YAML_SEQUENCE_NODE, ev->data.sequence_start.tag,
                     YAML_DEFAULT_SEQUENCE_TAG, ev);
        m->doc->y.nodes.start[id - 1].data.sequence.style = ev->data.sequence_start.style;
        anchor = ev->data.sequence_start.anchor;
        break;
    case YAML_MAPPING_START_EVENT:
        id = doc_add(m->doc, YAML_MAPPING_NODE, ev->data.mapping_start.tag,
                     YAML_DEFAULT_MAPPING_TAG, ev);
        m->doc->y.nodes.start[id - 1].data.mapping.style = ev->data.mapping_start.style;
        anchor = ev->data.mapping_start.anchor;
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        compose_close(m, ev);
        return 0;
    case YAML_ALIAS_EVENT: {
        const struct anchor *target = anchor_find(m, (const char *)ev->data.alias.anchor);
        if (target != NULL) {
            compose_attach(m, target->id);
            return 0;
        }
        m->why = (struct yaml_problem){.problem = "found undefined alias",
                                       .problem_mark = ev->start_mark};
        return -1;
    }
    default:
        return 0;
    }
    if (compose_anchor(m, id, anchor, ev->start_mark) != 0)
        return -1;
    compose_attach(m, id);
    if (ev->type != YAML_SCALAR_EVENT)
        m->open[m->depth++] = id;
    return 0;
}

// Anchors name nodes within one document.
static void
compose_reset(struct composer *m, struct doc *doc)
{
    for (size_t i = 0; i < m->anchor_count; i++)
        free(m->anchors[i].name);
    m->anchor_count = 0;
    if (m->slots != NULL)
        memset(m->slots, 0, m->slot_count * sizeof *m->slots);
    for (size_t i = 0; i < POLICY_MAX_DEPTH; i++)
        m->members[i].count = 0;
    m->depth = 0;
    m->doc = doc;
}

static void
compose_free(struct composer *m)
{
    compose_reset(m, NULL);
    free(m->anchors);
    free(m->slots);
    for (size_t i = 0; i < POLICY_MAX_DEPTH; i++)
        free(m->members[i].ids);
}

// A stream parsed once: its first document, whether a second one loads (and where its root is),
// and why the first did not load. yaml_parser_load reported a syntax error in the first document,
// and ignored one in the second; the limits are checked over the whole stream, as before any load.
struct stream {
    struct doc doc, next;
    bool doc_failed, next_loaded;
    struct yaml_problem why;
};

// Returns -1 (with a diagnostic) when the stream is past the limits or no parser could be made,
// 0 otherwise; `s`'s documents are set either way, for doc_free.
static int
parse_stream(const char *buf, size_t len, const char *file, const char *what, struct diag *diags,
             struct stream *s)
{
    *s = (struct stream){0};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        diag_add(diags, file, 0, 0, "cannot initialise the YAML parser");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    struct bounds b = {0};
    struct composer m = {0};
    size_t started = 0, ended = 0; // documents
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (ended == 0 && !s->doc_failed) {
                s->doc_failed = true;
                s->why = (struct yaml_problem){parser.problem, parser.context, parser.problem_mark,
                                               parser.context_mark};
            }
            break;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (bounds_check(&b, &ev, file, what, diags) != 0) {
            yaml_event_delete(&ev);
            rc = -1;
            break;
        }
        if (ev.type == YAML_DOCUMENT_START_EVENT) {
            started++;
            compose_reset(&m, started == 1                     ? &s->doc
                              : started == 2 && !s->doc_failed ? &s->next
                                                               : NULL);
        } else if (ev.type == YAML_DOCUMENT_END_EVENT) {
            if (++ended == 2 && m.doc != NULL)
                s->next_loaded = true;
            m.doc = NULL;
        } else if (m.doc != NULL && compose_event(&m, &ev) != 0) {
            if (started == 1) {
                s->doc_failed = true;
                s->why = m.why;
            }
            m.doc = NULL;
        }
        yaml_event_delete(&ev);
    }
    compose_free(&m);
    yaml_parser_delete(&parser);
    return rc;
}

// A document being loaded: the context of its checks, as sibling loaders see it.
struct policy_yaml {
    struct ctx c;
};

// Parses one YAML document and hands its root to `fn`; "what" names the document in the
// diagnostics that are not about its content. Returns the number of errors (0: loaded).
static size_t
load_document(const char *buf, size_t len, const char *file, const char *what, struct diag *diags,
              policy_yaml_root_fn fn, void *arg)
{
    size_t first = diags->count;
    struct stream s;
    size_t errors = 0;
    if (parse_stream(buf, len, file, what, diags, &s) != 0) {
        errors = 1;
        goto done;
    }
    if (s.doc_failed) {
        const char *problem = s.why.problem ? s.why.problem : "unknown problem";
        if (s.why.context != NULL)
            diag_add(diags, file, s.why.problem_mark.line + 1, s.why.problem_mark.column + 1,
                     "YAML syntax error: %s (%s that starts at line %zu, column %zu)", problem,
                     s.why.context, s.why.context_mark.line + 1, s.why.context_mark.column + 1);
        else
            diag_add(diags, file, s.why.problem_mark.line + 1, s.why.problem_mark.column + 1,
                     "YAML syntax error: %s", problem);
        errors = 1;
        goto done;
    }

    size_t doc_nodes = (size_t)(s.doc.y.nodes.top - s.doc.y.nodes.start);
    struct policy_yaml y = {
        .c = {.doc = &s.doc.y,
              .file = file,
              .diags = diags,
              .max_visits = POLICY_MAX_VISITS + POLICY_VISITS_PER_NODE * doc_nodes}};
    struct ctx *c = &y.c;
    yaml_node_t *root = yaml_document_get_root_node(&s.doc.y);
    fn(&y, root != NULL && !is_null(root) ? root : NULL, arg);
    if (root != NULL && !is_null(root) && s.next_loaded) {
        yaml_node_t *extra = yaml_document_get_root_node(&s.next.y);
        if (extra != NULL) {
            diag_add(diags, file, extra->start_mark.line + 1, extra->start_mark.column + 1,
                     "%s: a second YAML document; a %s file holds exactly one", what, what);
            c->errors++;
        }
    }
    if (over_budget(c)) {
        diag_add(diags, file, 1, 1, "%s: too many nodes after expanding aliases (limit %zu)", what,
                 c->max_visits);
        c->errors++;
    }
    errors = c->errors;
    diag_sort(diags, first);
done:
    doc_free(&s.doc);
    doc_free(&s.next);
    return errors;
}

static void
load_policy_root(struct policy_yaml *y, const yaml_node_t *root, void *arg)
{
    struct policy_spec *s = arg;
    if (root == NULL) {
        diag_add(y->c.diags, y->c.file, 1, 1,
                 "empty policy file (expected a ProtectionPolicy document with apiVersion, kind, "
                 "metadata and spec)");
        y->c.errors++;
        load_table_name_from(&y->c, NULL, s);
        return;
    }
    load_root(&y->c, root, s);
}

struct policy *
policy_load_buffer(const char *buf, size_t len, const char *file, struct diag *diags)
{
    struct policy *p = xcalloc(1, sizeof *p);
    atomic_init(&p->refs, 1);
    if (load_document(buf, len, file, "policy", diags, load_policy_root, &p->spec) > 0) {
        policy_unref(p);
        return NULL;
    }
    policy_digest(buf, len, p->sha256);
    return p;
}

char *
policy_read_file(const char *path, size_t *len, struct diag *diags)
{
    char why[300];
    char *buf = file_read(path, POLICY_MAX_FILE, len, why, sizeof why);
    if (buf == NULL)
        diag_add(diags, path, 0, 0, "%s", why);
    return buf;
}

struct policy *
policy_load_file(const char *path, struct diag *diags)
{
    size_t len;
    char *buf = policy_read_file(path, &len, diags);
    if (buf == NULL)
        return NULL;
    struct policy *p = policy_load_buffer(buf, len, path, diags);
    free(buf);
    return p;
}

struct policy *
policy_ref(struct policy *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void
policy_unref(struct policy *p)
{
    if (p == NULL || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    spec_free(&p->spec);
    free(p);
}

const struct policy_spec *
policy_spec(const struct policy *p)
{
    return &p->spec;
}

const char *
policy_sha256(const struct policy *p)
{
    return p->sha256;
}

const char *
policy_action_name(enum policy_action a)
{
    return ACTION_NAMES[a];
}

const struct policy_profile *
policy_profile_for(const struct policy_spec *s, const char *table, const char *ns)
{
    if (s->profile_count == 0)
        return NULL; // table may be NULL then
    size_t n = strlen(table);
    // The profiles the first byte allows and those that start anywhere, merged in file order (so
    // each of them passes policy_globs_may_match already).
    unsigned char ch = (unsigned char)table[0];
    const size_t *a = s->profile_anywhere, *a_end = a + s->profile_anywhere_count;
    const size_t *b = s->profile_first + s->profile_first_at[ch];
    const size_t *b_end = s->profile_first + s->profile_first_at[ch + 1];
    while (a < a_end || b < b_end) {
        size_t i = b == b_end || (a < a_end && *a < *b) ? *a++ : *b++;
        const struct policy_profile *pr = &s->profiles[i];
        if (policy_globs_match_len(&pr->tables, table, n) &&
            policy_globs_match(&pr->namespaces, ns ? ns : ""))
            return pr;
    }
    return NULL;
}

const struct policy_resource *
policy_resource_for(const struct policy_spec *s, const char *api_version, const char *kind)
{
    if (api_version == NULL || kind == NULL)
        return NULL;
    for (size_t i = 0; i < s->resource_count; i++)
        if (strcmp(s->resources[i].kind, kind) == 0 &&
            strcmp(s->resources[i].api_version, api_version) == 0)
            return &s->resources[i];
    return NULL;
}

const cJSON *
policy_path_get(const struct policy_path *path, const cJSON *obj)
{
    const cJSON *v = obj;
    for (size_t i = 0; i < path->depth && v != NULL; i++)
        v = cJSON_IsObject(v) ? json_get(v, path->segments[i]) : NULL;
    return v;
}

// ---- Globs -----------------------------------------------------------------------------------
//
// Every table of a review is tried against the globs of every profile, rule and exception, so a
// policy with a hundred profiles made fnmatch (about 280 instructions a call, most of them
// before the first character is compared) a third of a 10-component review. Nearly every glob
// is literal characters and '*': such a glob is kept lower-cased with its literal prefix and
// suffix, and matched here; a string that differs in the first character costs a compare. A
// glob with '?', '[', a backslash or a byte past ASCII is matched by fnmatch. The program never
// calls setlocale, so fnmatch's FNM_CASEFOLD folds ASCII letters only, as here.

static inline unsigned char
fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool
fold_equal(const char *s, const char *lc, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fold((unsigned char)s[i]) != (unsigned char)lc[i])
            return false;
    return true;
}

static void
first_add(uint64_t first[4], unsigned char c)
{
    first[c >> 6] |= (uint64_t)1 << (c & 63);
}

void
policy_globs_compile(struct policy_globs *g)
{
    if (g->compiled != NULL)
        for (size_t i = 0; i < g->count; i++)
            free(g->compiled->one[i].lc);
    free(g->compiled);
    g->compiled = xcalloc(1, sizeof *g->compiled + g->count * sizeof *g->compiled->one);
    g->compiled->one = (struct policy_glob *)(g->compiled + 1);
    for (size_t i = 0; i < g->count; i++) {
        struct policy_glob *c = &g->compiled->one[i];
        const char *p = g->items[i];
        c->kind = strchr(p, '*') ? GLOB_STARS : GLOB_LITERAL;
        c->len = strlen(p);
        for (size_t k = 0; k < c->len; k++)
            if (p[k] == '?' || p[k] == '[' || p[k] == '\\' || (unsigned char)p[k] >= 0x80)
                c->kind = GLOB_FNMATCH;
        if (c->kind == GLOB_FNMATCH || p[0] == '*') { // any first character
            memset(g->compiled->first, 0xff, sizeof g->compiled->first);
        } else { // '\0' for "": the empty string
            first_add(g->compiled->first, (unsigned char)p[0]);
            first_add(g->compiled->first, fold((unsigned char)p[0]));
            if (p[0] >= 'a' && p[0] <= 'z')
                first_add(g->compiled->first, (unsigned char)(p[0] - 32));
        }
        if (c->kind == GLOB_FNMATCH)
            continue;
        c->lc = xmalloc(c->len + 1);
        for (size_t k = 0; k <= c->len; k++)
            c->lc[k] = (char)fold((unsigned char)p[k]);
        c->prefix = strcspn(p, "*");
        c->suffix = c->len - (size_t)(strrchr(p, '*') ? strrchr(p, '*') - p + 1 : 0);
        for (size_t k = 0; k < c->len; k++)
            c->min += p[k] != '*';
    }
}

// s (n characters) against a GLOB_STARS glob: the prefix and suffix in place, then each piece
// between stars at its leftmost place after the previous one (which is enough with '*' alone).
static bool
stars_match(const struct policy_glob *c, const char *s, size_t n)
{
    if (n < c->min || !fold_equal(s, c->lc, c->prefix) ||
        !fold_equal(s + n - c->suffix, c->lc + c->len - c->suffix, c->suffix))
        return false;
    size_t at = c->prefix, end = n - c->suffix;
    const char *piece = c->lc + c->prefix, *stop = c->lc + c->len - c->suffix;
    while (piece < stop) {
        while (piece < stop && *piece == '*')
            piece++;
        size_t k = 0;
        while (piece + k < stop && piece[k] != '*')
            k++;
        if (k == 0)
            break;
        while (at + k <= end && !fold_equal(s + at, piece, k))
            at++;
        if (at + k > end)
            return false;
        at += k;
        piece += k;
    }
    return true;
}

// s (n characters) against one compiled glob (its text is `pattern`).
static bool
glob_match(const struct policy_glob *c, const char *pattern, const char *s, size_t n)
{
    switch (c->kind) {
    case GLOB_LITERAL:
        return n == c->len && fold_equal(s, c->lc, c->len);
    case GLOB_STARS:
        return stars_match(c, s, n);
    default:
        return fnmatch(pattern, s, FNM_CASEFOLD) == 0;
    }
}

bool
policy_globs_match(const struct policy_globs *g, const char *s)
{
    return g->count > 0 && policy_globs_match_len(g, s, strlen(s)); // s may be NULL then
}

bool
policy_globs_match_len(const struct policy_globs *g, const char *s, size_t n)
{
    return policy_globs_first_len(g, s, n) != NULL;
}

const char *
policy_globs_first(const struct policy_globs *g, const char *s)
{
    return g->count > 0 ? policy_globs_first_len(g, s, strlen(s)) : NULL;
}

const char *
policy_globs_first_len(const struct policy_globs *g, const char *s, size_t n)
{
    if (g->compiled == NULL) {
        for (size_t i = 0; i < g->count; i++)
            if (fnmatch(g->items[i], s, FNM_CASEFOLD) == 0)
                return g->items[i];
        return NULL;
    }
    if (!policy_globs_may_match(g, s))
        return NULL;
    for (size_t i = 0; i < g->count; i++) {
        const struct policy_glob *c = &g->compiled->one[i];
        // Most globs fail on the length or the first or last character: no call for them.
        if (c->kind != GLOB_FNMATCH &&
            (n < c->min ||
             (c->prefix > 0 && fold((unsigned char)s[0]) != (unsigned char)c->lc[0]) ||
             (c->suffix > 0 && fold((unsigned char)s[n - 1]) != (unsigned char)c->lc[c->len - 1])))
            continue;
        if (glob_match(c, g->items[i], s, n))
            return g->items[i];
    }
    return NULL;
}

// ---- Sibling documents ----------------------------------------------------------------------

int
policy_yaml_load(const char *buf, size_t len, const char *file, const char *what,
                 struct diag *diags, policy_yaml_root_fn fn, void *arg)
{
    return load_document(buf, len, file, what, diags, fn, arg) > 0 ? -1 : 0;
}

void
policy_yaml_error(struct policy_yaml *y, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n == NULL) {
        diag_add(y->c.diags, y->c.file, 1, 1, "%s", msg);
        y->c.errors++;
        return;
    }
    err_at(&y->c, n, "%s", msg);
}

void
policy_yaml_check_map(struct policy_yaml *y, const yaml_node_t *map, const char *what,
                      const struct policy_yaml_field *fields, size_t n, const yaml_node_t **found)
{
    struct field f[16];
    if (n > 16)
        n = 16;
    for (size_t i = 0; i < n; i++)
        f[i] = (struct field){fields[i].key, (enum ftype)fields[i].type, fields[i].required};
    check_map(&y->c, map, what, f, n, found);
}

const yaml_node_t *
policy_yaml_item(struct policy_yaml *y, const yaml_node_t *seq, size_t i)
{
    if (seq == NULL || seq->type != YAML_SEQUENCE_NODE || over_budget(&y->c) ||
        i >= (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start))
        return NULL;
    return node(&y->c, seq->data.sequence.items.start[i]);
}

const char *
policy_yaml_scalar(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? scalar(n) : NULL;
}

bool
policy_yaml_bool(const yaml_node_t *n)
{
    bool b = false;
    return n != NULL && as_bool(n, &b) == 0 && b;
}

struct policy_globs
policy_yaml_globs(struct policy_yaml *y, const yaml_node_t *seq, const char *what)
{
    return globs_from(&y->c, seq, what);
}

void
policy_yaml_label(struct policy_yaml *y, const yaml_node_t *map, const char *kind, char *what,
                  size_t len)
{
    entry_label(&y->c, map, kind, what, len);
}

void
policy_yaml_duplicates(struct policy_yaml *y, const char *kind, const char *const *names,
                       const yaml_node_t *const *nodes, size_t n)
{
    report_duplicate_names(&y->c, kind, names, nodes, n);
}

const char *
policy_suggest(const char *word, const char *const *names, size_t n)
{
    return suggest_name(word, names, n);
}

void
policy_globs_free(struct policy_globs *g)
{
    globs_free(g);
}

// ---- Printing --------------------------------------------------------------------------------

// Writes a double-quoted YAML scalar that loads back to exactly `s`: escapes what libyaml's
// reader refuses raw (C0 and C1 controls, DEL, U+FFFE, U+FFFF) and the characters it folds as
// line breaks inside quotes (NEL U+0085, LS U+2028, PS U+2029).
static void
print_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            fprintf(out, "\\x%02x", *++p);
        else if ((p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) ||
                 (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))) {
            fprintf(out, "\\u%04x", (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu));
            p += 2;
        } else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void
print_globs(FILE *out, const char *indent, const char *key, const struct policy_globs *g)
{
    fprintf(out, "%s%s: [", indent, key);
    for (size_t i = 0; i < g->count; i++) {
        if (i > 0)
            fputs(", ", out);
        print_str(out, g->items[i]);
    }
    fputs("]\n", out);
}

void
policy_print(const struct policy *p, FILE *out)
{
    const struct policy_spec *s = &p->spec;
    fputs("apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\nmetadata:\n  name: ", out);
    print_str(out, s->name);
    fprintf(out, "\n  # sha256: %s\nspec:\n  components:\n", p->sha256);
    print_globs(out, "    ", "types", &s->component_types);
    fputs("    tableNameFrom: ", out);
    print_str(out, s->table_name_from);
    fputs("\n  trait:\n    type: ", out);
    print_str(out, s->trait_type);
    fputs("\n    defaults:\n", out);
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        fprintf(out, "      %s: %s\n", POLICY_SETTING_NAMES[i], s->defaults[i] ? "true" : "false");
    fputs("  exclude:\n", out);
    print_globs(out, "    ", "namespaces", &s->exclude_namespaces);
    print_globs(out, "    ", "users", &s->exclude_users);
    print_globs(out, "    ", "groups", &s->exclude_groups);
    if (s->profile_count > 0)
        fputs("  profiles:\n", out);
    for (size_t i = 0; i < s->profile_count; i++) {
        const struct policy_profile *pr = &s->profiles[i];
        fputs("    - name: ", out);
        print_str(out, pr->name);
        fputc('\n', out);
        print_globs(out, "      ", "tables", &pr->tables);
        print_globs(out, "      ", "namespaces", &pr->namespaces);
        if (pr->inject) {
            fputs("      defaults:\n", out);
            for (int k = 0; k < POLICY_SETTING_COUNT; k++)
                fprintf(out, "        %s: %s\n", POLICY_SETTING_NAMES[k],
                        pr->defaults[k] ? "true" : "false");
        }
        fprintf(out, "      inject: %s\n      retain: %s\n", pr->inject ? "true" : "false",
                pr->retain ? "true" : "false");
    }
    fprintf(out, "  exceptionsMaxDays: %u\n", s->exceptions_max_days);
    fputs(s->resource_count ? "  resources:\n" : "  resources: []\n", out);
    for (size_t i = 0; i < s->resource_count; i++) {
        const struct policy_resource *r = &s->resources[i];
        const char *keys[] = {"tableNameFrom", "deletionProtectionFrom", "pointInTimeRecoveryFrom"};
        const struct policy_path *paths[] = {&r->table_name, &r->settings[0], &r->settings[1]};
        fputs("    - apiVersion: ", out);
        print_str(out, r->api_version);
        fputs("\n      kind: ", out);
        print_str(out, r->kind);
        fputc('\n', out);
        for (size_t k = 0; k < 3; k++) {
            fprintf(out, "      %s: ", keys[k]);
            print_str(out, paths[k]->text);
            fputc('\n', out);
        }
    }
    fputs(s->rule_count ? "  rules:\n" : "  rules: []\n", out);
    for (size_t i = 0; i < s->rule_count; i++) {
        const struct policy_rule *r = &s->rules[i];
        fputs("    - name: ", out);
        print_str(out, r->name);
        fputc('\n', out);
        print_globs(out, "      ", "tables", &r->tables);
        print_globs(out, "      ", "namespaces", &r->namespaces);
        if (r->forbid != 0) {
            fputs("      forbid: [", out);
            for (int k = 0, n = 0; k < POLICY_TRANSITION_COUNT; k++)
                if (r->forbid & (1u << k))
                    fprintf(out, "%s%s", n++ ? ", " : "", POLICY_TRANSITION_NAMES[k]);
            fputs("]\n", out);
        } else {
            fputs("      require:\n", out);
            for (int k = 0; k < POLICY_SETTING_COUNT; k++)
                if (r->require[k] >= 0)
                    fprintf(out, "        %s: %s\n", POLICY_SETTING_NAMES[k],
                            r->require[k] ? "true" : "false");
        }
        fprintf(out, "      action: %s\n", ACTION_NAMES[r->action]);
        if (r->message != NULL) {
            fputs("      message: ", out);
            print_str(out, r->message);
            fputc('\n', out);
        }
    }
}

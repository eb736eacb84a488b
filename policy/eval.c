// SPDX-License-Identifier: Apache-2.0
// Evaluation of a KubeVela Application: trait injection (mutate) and rule checks (validate),
// computing each table's protection as KubeVela renders the trait.
#include "policy/eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/patch.h"
#include "policy/xalloc.h"

// The trait's own CUE defaults: a present trait with a missing property renders as true.
static const bool TRAIT_CUE_DEFAULT = true;

const char *
eval_skip_name(enum eval_skip s)
{
    static const char *const names[] = {"evaluated", "not-application", "deleting", "excluded"};
    return names[s];
}

static const char *
str_at(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool
is_application(const cJSON *obj)
{
    const char *api = str_at(obj, "apiVersion"), *kind = str_at(obj, "kind");
    return cJSON_IsObject(obj) && api != NULL && kind != NULL &&
           strncmp(api, "core.oam.dev/", 13) == 0 && strcmp(kind, "Application") == 0;
}

static enum eval_skip
precheck(const struct policy_spec *s, const struct eval_input *in)
{
    if (!is_application(in->object))
        return EVAL_NOT_APPLICATION;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(in->object, "metadata");
    const cJSON *dts = cJSON_GetObjectItemCaseSensitive(meta, "deletionTimestamp");
    if (dts != NULL && !cJSON_IsNull(dts))
        return EVAL_DELETING;
    if (policy_globs_match(&s->exclude_namespaces, in->namespace) ||
        policy_globs_match(&s->exclude_users, in->username))
        return EVAL_EXCLUDED;
    for (size_t i = 0; i < in->group_count; i++)
        if (policy_globs_match(&s->exclude_groups, in->groups[i]))
            return EVAL_EXCLUDED;
    return EVAL_EVALUATED;
}

static const cJSON *
components_of(const cJSON *obj)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    const cJSON *comps = cJSON_GetObjectItemCaseSensitive(spec, "components");
    return cJSON_IsArray(comps) ? comps : NULL;
}

static bool
component_matches(const struct policy_spec *s, const cJSON *comp)
{
    const char *type = str_at(comp, "type");
    return cJSON_IsObject(comp) && type != NULL && policy_globs_match(&s->component_types, type);
}

enum state { ST_ON, ST_OFF, ST_NO_TRAIT, ST_BAD };

// A table's protection as KubeVela would render it, with why it is what it is.
struct protection {
    enum state state[POLICY_SETTING_COUNT];
    bool defaulted[POLICY_SETTING_COUNT]; // ST_ON or ST_OFF from the trait's CUE default
    char why[POLICY_SETTING_COUNT][160];  // for ST_BAD: what is wrong
};

static void
describe_value(const cJSON *v, char *buf, size_t len)
{
    if (cJSON_IsString(v))
        snprintf(buf, len, "the string \"%.40s\"", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(buf, len, "the number %g", v->valuedouble);
    else if (cJSON_IsNull(v))
        snprintf(buf, len, "null");
    else if (cJSON_IsArray(v))
        snprintf(buf, len, "a list");
    else
        snprintf(buf, len, "a mapping");
}

static void
protection_of(const struct policy_spec *s, const cJSON *comp, struct protection *pr)
{
    const cJSON *traits = cJSON_GetObjectItemCaseSensitive(comp, "traits");
    const cJSON *found = NULL, *t;
    size_t count = 0;
    const cJSON *list = cJSON_IsArray(traits) ? traits : NULL;
    cJSON_ArrayForEach(t, list)
    {
        const char *type = str_at(t, "type");
        if (type != NULL && strcmp(type, s->trait_type) == 0 && count++ == 0)
            found = t;
    }
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(found, "properties");
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        pr->why[i][0] = '\0';
        pr->defaulted[i] = false;
        if (traits != NULL && !cJSON_IsArray(traits) && !cJSON_IsNull(traits)) {
            pr->state[i] = ST_BAD;
            snprintf(pr->why[i], sizeof pr->why[i], "its traits are not a list");
        } else if (count == 0) {
            pr->state[i] = ST_NO_TRAIT;
        } else if (count > 1) {
            pr->state[i] = ST_BAD;
            snprintf(pr->why[i], sizeof pr->why[i], "it has %zu %s traits where one is allowed",
                     count, s->trait_type);
        } else if (props != NULL && !cJSON_IsObject(props) && !cJSON_IsNull(props)) {
            pr->state[i] = ST_BAD;
            snprintf(pr->why[i], sizeof pr->why[i], "its %s trait's properties are not a mapping",
                     s->trait_type);
        } else {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(props, POLICY_SETTING_NAMES[i]);
            if (v == NULL) {
                pr->state[i] = TRAIT_CUE_DEFAULT ? ST_ON : ST_OFF;
                pr->defaulted[i] = true;
            } else if (cJSON_IsBool(v)) {
                pr->state[i] = cJSON_IsTrue(v) ? ST_ON : ST_OFF;
            } else {
                char got[80];
                describe_value(v, got, sizeof got);
                pr->state[i] = ST_BAD;
                snprintf(pr->why[i], sizeof pr->why[i], "%s is %s, not a boolean",
                         POLICY_SETTING_NAMES[i], got);
            }
        }
    }
}

// ---- the tables examined -------------------------------------------------------------------

static const char *
table_name(const struct policy_spec *s, const cJSON *comp)
{
    const cJSON *v = comp;
    for (size_t i = 0; i < s->table_name_depth && v != NULL; i++)
        v = cJSON_GetObjectItemCaseSensitive(v, s->table_name_path[i]);
    if (cJSON_IsString(v) && v->valuestring[0] != '\0')
        return v->valuestring;
    return str_at(comp, "name");
}

// A setting as struct eval_table reports it.
static int
setting_value(enum state st)
{
    return st == ST_ON ? 1 : st == ST_BAD ? -2 : 0;
}

// Appends a row for `comp` (which holds `table`) and returns it; before[] and after[] say "none".
// The array grows by doubling: an Application may hold thousands of components.
static struct eval_table *
add_table(struct eval_result *out, const cJSON *comp, const char *table)
{
    size_t n = out->table_count;
    if ((n & (n - 1)) == 0)
        out->tables = xrealloc(out->tables, (n ? 2 * n : 1) * sizeof *out->tables);
    struct eval_table *t = &out->tables[out->table_count++];
    const char *cname = str_at(comp, "name");
    *t = (struct eval_table){.component = xstrdup(cname ? cname : ""), .table = xstrdup(table)};
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        t->before[i] = t->after[i] = -1;
    return t;
}

// ---- mutate ----------------------------------------------------------------------------------

// The trait is built for every component that lacks it: its keys are literals and its type a
// reference into the policy (which outlives the result), so it costs no string copies.
static cJSON *
trait_properties(const struct policy_spec *s)
{
    cJSON *props = cJSON_CreateObject();
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        cJSON_AddItemToObjectCS(props, POLICY_SETTING_NAMES[i], cJSON_CreateBool(s->defaults[i]));
    return props;
}

static cJSON *
new_trait(const struct policy_spec *s)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddItemToObjectCS(t, "type", cJSON_CreateStringReference(s->trait_type));
    cJSON_AddItemToObjectCS(t, "properties", trait_properties(s));
    return t;
}

static cJSON *
ops(struct eval_result *out)
{
    if (out->patch == NULL)
        out->patch = cJSON_CreateArray();
    return out->patch;
}

// Adds what one component lacks. `path` is /spec/components/<i> and is restored on return.
static void
mutate_component(const struct policy_spec *s, const cJSON *comp, struct patch_path *path,
                 struct eval_result *out)
{
    size_t base = path->len;
    const cJSON *traits = cJSON_GetObjectItemCaseSensitive(comp, "traits");
    patch_path_push(path, "traits");
    if (traits == NULL || cJSON_IsNull(traits)) {
        cJSON *list = cJSON_CreateArray();
        cJSON_AddItemToArray(list, new_trait(s));
        patch_add(ops(out), path->buf, list);
        goto done;
    }
    if (!cJSON_IsArray(traits))
        goto done; // not a KubeVela shape; an "add" here would fail to apply

    const cJSON *found = NULL;
    size_t found_at = 0, count = 0, j = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, traits)
    {
        const char *type = str_at(t, "type");
        if (type != NULL && strcmp(type, s->trait_type) == 0) {
            if (count++ == 0) {
                found = t;
                found_at = j;
            }
        }
        j++;
    }
    if (count == 0) {
        patch_path_push(path, "-");
        patch_add(ops(out), path->buf, new_trait(s));
        goto done;
    }
    if (count > 1)
        goto done; // ambiguous; validate reports it

    patch_path_push_index(path, found_at);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(found, "properties");
    if (props == NULL || cJSON_IsNull(props)) {
        patch_path_push(path, "properties");
        patch_add(ops(out), path->buf, trait_properties(s));
        goto done;
    }
    if (!cJSON_IsObject(props))
        goto done; // explicit but malformed: never overridden, validate reports it
    patch_path_push(path, "properties");
    size_t props_len = path->len;
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        if (cJSON_GetObjectItemCaseSensitive(props, POLICY_SETTING_NAMES[i]) != NULL)
            continue;
        patch_path_push(path, POLICY_SETTING_NAMES[i]);
        patch_add(ops(out), path->buf, cJSON_CreateBool(s->defaults[i]));
        patch_path_truncate(path, props_len);
    }
done:
    patch_path_truncate(path, base);
}

// The row of a component mutate examined: what it renders once the patch is applied. A missing
// trait or property is added with the defaults; an explicit or malformed value is left alone.
static void
mutated_row(const struct policy_spec *s, const cJSON *comp, struct eval_result *out)
{
    const char *table = table_name(s, comp);
    if (table == NULL)
        return;
    struct protection pr;
    protection_of(s, comp, &pr);
    struct eval_table *t = add_table(out, comp, table);
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        t->after[i] = pr.state[i] == ST_NO_TRAIT || pr.defaulted[i] ? s->defaults[i]
                                                                    : setting_value(pr.state[i]);
}

int
eval_mutate(const struct policy *p, const struct eval_input *in, struct eval_result *out)
{
    const struct policy_spec *s = policy_spec(p);
    memset(out, 0, sizeof *out);
    out->skip = precheck(s, in);
    if (out->skip != EVAL_EVALUATED)
        return 0;
    const cJSON *comps = components_of(in->object);
    struct patch_path path = {0};
    patch_path_push(&path, "spec");
    patch_path_push(&path, "components");
    size_t base = path.len, i = 0;
    const cJSON *comp;
    cJSON_ArrayForEach(comp, comps)
    {
        if (component_matches(s, comp)) {
            patch_path_push_index(&path, i);
            mutate_component(s, comp, &path, out);
            patch_path_truncate(&path, base);
            mutated_row(s, comp, out);
        }
        i++;
    }
    patch_path_free(&path);
    return 0;
}

// ---- validate --------------------------------------------------------------------------------

// Keeps a message on one line: control characters become spaces.
static void
one_line(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

struct subst {
    const char *application, *namespace, *component, *table, *rule, *pattern;
};

static char *
expand(const char *tmpl, const struct subst *v)
{
    const struct {
        const char *name;
        const char *value;
    } vars[] = {{"application", v->application},
                {"namespace", v->namespace},
                {"component", v->component},
                {"table", v->table},
                {"rule", v->rule},
                {"pattern", v->pattern}};
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (f == NULL)
        return xstrdup(tmpl);
    for (const char *p = tmpl; *p; p++) {
        size_t i = 0, n = sizeof vars / sizeof *vars;
        if (*p == '{') {
            for (; i < n; i++) {
                size_t k = strlen(vars[i].name);
                if (strncmp(p + 1, vars[i].name, k) == 0 && p[1 + k] == '}')
                    break;
            }
        }
        if (*p == '{' && i < n) {
            fputs(vars[i].value, f);
            p += strlen(vars[i].name) + 1;
        } else {
            fputc(*p, f);
        }
    }
    fclose(f);
    return out;
}

static char *
builtin_message(const struct policy_spec *s, const struct subst *v, const struct policy_rule *r,
                int setting, const struct protection *pr)
{
    const char *name = POLICY_SETTING_NAMES[setting];
    const char *want = r->require[setting] ? "true" : "false";
    const char *q = "\"";
    // A denial of 1000 tables builds 1000 of these: pieces, not a format string.
#define HEAD_PIECES                                                                                \
    "Application \"", v->namespace, "/", v->application, "\" table \"", v->table, "\": rule \"",   \
        v->rule, "\" (tables ", v->pattern, ") requires ", name, ": ", want, "; "
    switch (pr->state[setting]) {
    case ST_NO_TRAIT:
        return xconcat(HEAD_PIECES, "the component has no ", s->trait_type,
                       " trait, so the table is unprotected: add the trait {type: ", s->trait_type,
                       ", properties: {", name, ": ", want, "}} to component \"", v->component, q,
                       NULL);
    case ST_BAD:
        return xconcat(HEAD_PIECES, pr->why[setting], ": give component \"", v->component,
                       "\" one ", s->trait_type, " trait with ", name, ": ", want, NULL);
    default:
        return xconcat(HEAD_PIECES, name, " is ", pr->state[setting] == ST_ON ? "true" : "false",
                       ": set ", name, ": ", want, " in the ", s->trait_type,
                       " trait of component \"", v->component, q, NULL);
    }
#undef HEAD_PIECES
}

// Cuts `s` to at most `max` bytes on a UTF-8 boundary, marking the cut with "...".
static void
shorten(char *s, size_t max)
{
    if (strlen(s) <= max)
        return;
    size_t cut = max - 3;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    memcpy(s + cut, "...", 4);
}

static char *
warning_text(const struct eval_finding *f, int setting, const struct policy_rule *r)
{
    char *w =
        f->rule->message
            ? xstrdup(f->message)
            : xconcat("table \"", f->table, "\": ", POLICY_SETTING_NAMES[setting], " should be ",
                      r->require[setting] ? "true" : "false", " (rule ", r->name, ")", NULL);
    shorten(w, EVAL_WARNING_MAX);
    return w;
}

static const char *
first_match(const struct policy_globs *g, const char *s)
{
    for (size_t i = 0; i < g->count; i++) {
        struct policy_globs one = {&g->items[i], 1};
        if (policy_globs_match(&one, s))
            return g->items[i];
    }
    return NULL;
}

static void
add_finding(struct eval_result *out, const struct eval_finding *f)
{
    out->findings = xrealloc(out->findings, (out->finding_count + 1) * sizeof *out->findings);
    out->findings[out->finding_count++] = *f;
}

static void
validate_component(const struct policy_spec *s, const struct eval_input *in, const char *app,
                   const cJSON *comp, struct eval_result *out)
{
    const char *table = table_name(s, comp);
    const char *cname = str_at(comp, "name");
    if (table == NULL)
        return; // no name at all: KubeVela's schema rejects it
    struct protection pr;
    protection_of(s, comp, &pr);
    struct eval_table *row = add_table(out, comp, table);
    for (int k = 0; k < POLICY_SETTING_COUNT; k++)
        row->after[k] = setting_value(pr.state[k]);
    for (size_t r = 0; r < s->rule_count; r++) {
        const struct policy_rule *rule = &s->rules[r];
        const char *pattern = first_match(&rule->tables, table);
        if (pattern == NULL || !policy_globs_match(&rule->namespaces, in->namespace))
            continue;
        for (int k = 0; k < POLICY_SETTING_COUNT; k++) {
            if (rule->require[k] < 0)
                continue;
            enum state want = rule->require[k] ? ST_ON : ST_OFF;
            enum state have = pr.state[k] == ST_NO_TRAIT ? ST_OFF : pr.state[k];
            if (have == want)
                continue;
            struct subst v = {app, in->namespace, cname ? cname : "", table, rule->name, pattern};
            struct eval_finding f = {rule, pattern, xstrdup(v.component), xstrdup(table), NULL};
            f.message =
                rule->message ? expand(rule->message, &v) : builtin_message(s, &v, rule, k, &pr);
            one_line(f.message);
            add_finding(out, &f);
            if (rule->action == POLICY_WARN) {
                out->warnings =
                    xrealloc(out->warnings, (out->warning_count + 1) * sizeof *out->warnings);
                out->warnings[out->warning_count++] = warning_text(&f, k, rule);
                one_line(out->warnings[out->warning_count - 1]);
            }
        }
    }
}

static char *
deny_message(const struct policy *p, const struct eval_result *out)
{
    char *buf = NULL;
    size_t len = 0, n = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return xstrdup("denied by tableguard policy");
    for (size_t i = 0; i < out->finding_count; i++)
        n += out->findings[i].rule->action == POLICY_DENY;
    fprintf(f, "tableguard policy \"%s\": %zu violation%s: ", policy_spec(p)->name, n,
            n == 1 ? "" : "s");
    size_t k = 0;
    for (size_t i = 0; i < out->finding_count && k < EVAL_DENY_LISTED; i++) {
        if (out->findings[i].rule->action != POLICY_DENY)
            continue;
        if (n > 1)
            fprintf(f, "%s[%zu] ", k ? " " : "", k + 1);
        fputs(out->findings[i].message, f);
        k++;
    }
    if (n > k)
        fprintf(f, " ... and %zu more (each is in the audit log and in `tableguard check`)", n - k);
    fclose(f);
    one_line(buf);
    // kubectl prints the message whole; a megabyte table name must not make it a megabyte.
    shorten(buf, EVAL_DENY_MAX);
    return buf;
}

int
eval_validate(const struct policy *p, const struct eval_input *in, struct eval_result *out)
{
    const struct policy_spec *s = policy_spec(p);
    memset(out, 0, sizeof *out);
    out->skip = precheck(s, in);
    if (out->skip != EVAL_EVALUATED)
        return 0;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(in->object, "metadata");
    const char *app = str_at(meta, "name");
    const cJSON *comp;
    cJSON_ArrayForEach(comp, components_of(in->object))
    {
        if (component_matches(s, comp))
            validate_component(s, in, app ? app : "", comp, out);
    }
    for (size_t i = 0; i < out->finding_count; i++)
        out->denied |= out->findings[i].rule->action == POLICY_DENY;
    if (out->denied)
        out->deny_message = deny_message(p, out);
    return 0;
}

void
eval_result_free(struct eval_result *r)
{
    if (r == NULL)
        return;
    cJSON_Delete(r->patch);
    for (size_t i = 0; i < r->finding_count; i++) {
        free(r->findings[i].component);
        free(r->findings[i].table);
        free(r->findings[i].message);
    }
    free(r->findings);
    free(r->deny_message);
    for (size_t i = 0; i < r->warning_count; i++)
        free(r->warnings[i]);
    free(r->warnings);
    for (size_t i = 0; i < r->table_count; i++) {
        free(r->tables[i].component);
        free(r->tables[i].table);
        free(r->tables[i].old_table);
    }
    free(r->tables);
    memset(r, 0, sizeof *r);
}

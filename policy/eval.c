// SPDX-License-Identifier: Apache-2.0
// Evaluation of a KubeVela Application: trait injection (mutate) and rule checks (validate),
// computing each table's protection as KubeVela renders the trait.
#include "policy/eval.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/bypass.h"
#include "policy/kinds.h"
#include "policy/patch.h"
#include "policy/transition.h"
#include "util/xalloc.h"
#include "util/jsonr.h"
#include "util/jsonw.h"

// The trait's own CUE defaults: a present trait with a missing property renders as true.
static const bool TRAIT_CUE_DEFAULT = true;

const char *
eval_skip_name(enum eval_skip s)
{
    static const char *const names[] = {"evaluated", "not-application", "deleting", "excluded",
                                        "unreadable"};
    return names[s];
}

static bool
is_delete(const struct eval_input *in)
{
    return in->operation != NULL && strcmp(in->operation, "DELETE") == 0;
}

// `subject` is the Application judged: the object, or on DELETE the oldObject it removes.
static enum eval_skip
precheck(const struct policy_spec *s, const struct eval_input *in, const cJSON *subject)
{
    if (!transition_is_application(subject))
        return EVAL_NOT_APPLICATION;
    // An object being deleted (finalizers being removed) is passed over on an UPDATE, and on a
    // DELETE of it. Not on a CREATE: the API server clears deletionTimestamp after the mutating
    // webhooks and before the validating ones, so skipping it would store an unprotected table.
    const cJSON *meta = json_get(subject, "metadata");
    const cJSON *dts = json_get(meta, "deletionTimestamp");
    if (dts != NULL && !cJSON_IsNull(dts) && in->operation != NULL &&
        (strcmp(in->operation, "UPDATE") == 0 || strcmp(in->operation, "DELETE") == 0))
        return EVAL_DELETING;
    if (eval_excluded(s, in))
        return EVAL_EXCLUDED;
    return in->unreadable != NULL ? EVAL_UNREADABLE : EVAL_EVALUATED;
}

bool
eval_excluded(const struct policy_spec *s, const struct eval_input *in)
{
    if (in->ignore_exclusions)
        return false;
    if (policy_globs_match(&s->exclude_namespaces, in->namespace) ||
        policy_globs_match(&s->exclude_users, in->username))
        return true;
    for (size_t i = 0; i < in->group_count; i++)
        if (policy_globs_match(&s->exclude_groups, in->groups[i]))
            return true;
    return false;
}

// The glob of `g` that matches `value`, or NULL.
static const char *
matching_glob(const struct policy_globs *g, const char *value)
{
    return value != NULL ? policy_globs_first(g, value) : NULL;
}

int
eval_exclusion(const struct policy *p, const struct eval_input *in, struct eval_exclusion *out)
{
    const struct policy_spec *s = policy_spec(p);
    const char *glob;
    if ((glob = matching_glob(&s->exclude_namespaces, in->namespace)) != NULL) {
        *out = (struct eval_exclusion){"namespace", in->namespace, glob};
        return 0;
    }
    if ((glob = matching_glob(&s->exclude_users, in->username)) != NULL) {
        *out = (struct eval_exclusion){"user", in->username, glob};
        return 0;
    }
    for (size_t i = 0; i < in->group_count; i++)
        if ((glob = matching_glob(&s->exclude_groups, in->groups[i])) != NULL) {
            *out = (struct eval_exclusion){"group", in->groups[i], glob};
            return 0;
        }
    return -1;
}

static const cJSON *
components_of(const cJSON *obj)
{
    const cJSON *spec = json_get(obj, "spec");
    const cJSON *comps = json_get(spec, "components");
    return cJSON_IsArray(comps) ? comps : NULL;
}

static bool
component_matches(const struct policy_spec *s, const cJSON *comp)
{
    const char *type = json_str(comp, "type");
    return cJSON_IsObject(comp) && type != NULL && policy_globs_match(&s->component_types, type);
}

enum state { ST_ON, ST_OFF, ST_NO_TRAIT, ST_BAD };

// A table's protection as KubeVela would render it, with why it is what it is.
struct protection {
    enum state state[POLICY_SETTING_COUNT];
    bool defaulted[POLICY_SETTING_COUNT]; // ST_ON or ST_OFF from the trait's CUE default
    bool bypassed[POLICY_SETTING_COUNT];  // an override or a patch trait made it what it is
    char why[POLICY_SETTING_COUNT][320];  // for ST_BAD, or when bypassed: what is wrong
};

void
eval_describe_value(const cJSON *v, char *buf, size_t len)
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

// The dotted path of a guarded object's field, e.g. "spec.deletionProtectionEnabled".
static void
field_path(const char *const *path, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (; *path != NULL && used < len; path++) {
        int w = snprintf(buf + used, len - used, "%s%s", used ? "." : "", *path);
        used += w > 0 ? (size_t)w : 0;
    }
}

// Setting i holds `v`, which is not a boolean: an error for the table, saying what it is.
static void
not_boolean(struct protection *pr, int i, const char *what, const cJSON *v)
{
    char got[80];
    eval_describe_value(v, got, sizeof got);
    pr->state[i] = ST_BAD;
    snprintf(pr->why[i], sizeof pr->why[i], "%.64s is %.80s, not a boolean", what, got);
}

static void
protection_of(const struct policy_spec *s, const cJSON *comp, struct protection *pr)
{
    const cJSON *traits = json_get(comp, "traits");
    const cJSON *found = NULL, *t;
    size_t count = 0;
    const cJSON *list = cJSON_IsArray(traits) ? traits : NULL;
    cJSON_ArrayForEach(t, list)
    {
        const char *type = json_str(t, "type");
        if (type != NULL && strcmp(type, s->trait_type) == 0 && count++ == 0)
            found = t;
    }
    const cJSON *props = json_get(found, "properties");
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
            const cJSON *v = json_get(props, POLICY_SETTING_NAMES[i]);
            if (v == NULL) {
                pr->state[i] = TRAIT_CUE_DEFAULT ? ST_ON : ST_OFF;
                pr->defaulted[i] = true;
            } else if (cJSON_IsBool(v)) {
                pr->state[i] = cJSON_IsTrue(v) ? ST_ON : ST_OFF;
            } else {
                not_boolean(pr, i, POLICY_SETTING_NAMES[i], v);
            }
        }
    }
}

// ---- the tables examined -------------------------------------------------------------------

// A setting as struct eval_table reports it.
static int
setting_value(enum state st)
{
    return st == ST_ON ? 1 : st == ST_BAD ? -2 : 0;
}

// Appends a row for component `cname` holding `table` (NULL: gone) and returns it; before[] and
// after[] say "none". The array grows by doubling: an Application may hold thousands of tables.
static struct eval_table *
add_row(struct eval_result *out, const char *cname, const char *table)
{
    size_t n = out->table_count;
    if ((n & (n - 1)) == 0)
        out->tables = xrealloc(out->tables, (n ? 2 * n : 1) * sizeof *out->tables);
    struct eval_table *t = &out->tables[out->table_count++];
    *t = (struct eval_table){.component = xstrdup(cname ? cname : ""),
                             .table = table ? xstrdup(table) : NULL};
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        t->before[i] = t->after[i] = -1;
    return t;
}

static struct eval_table *
add_table(struct eval_result *out, const cJSON *comp, const char *table)
{
    return add_row(out, json_str(comp, "name"), table);
}

// ---- mutate
// ----------------------------------------------------------------------------------

// The trait is built for every component that lacks it: its keys are literals and its type a
// reference into the policy (which outlives the result), so it costs no string copies.
static cJSON *
trait_properties(const int *defaults)
{
    cJSON *props = cJSON_CreateObject();
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        cJSON_AddItemToObjectCS(props, POLICY_SETTING_NAMES[i], cJSON_CreateBool(defaults[i]));
    return props;
}

static cJSON *
new_trait(const struct policy_spec *s, const int *defaults)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddItemToObjectCS(t, "type", cJSON_CreateStringReference(s->trait_type));
    cJSON_AddItemToObjectCS(t, "properties", trait_properties(defaults));
    return t;
}

static cJSON *
ops(struct eval_result *out)
{
    if (out->patch == NULL)
        out->patch = cJSON_CreateArray();
    return out->patch;
}

// Adds what one component lacks, with the defaults of its table's profile `prof` (NULL: none,
// trait.defaults); a profile with inject: false leaves it alone. `path` is /spec/components/<i>
// and is restored on return.
static void
mutate_component(const struct policy_spec *s, const cJSON *comp, const struct policy_profile *prof,
                 struct patch_path *path, struct eval_result *out)
{
    if (prof != NULL && !prof->inject)
        return;
    int defaults[POLICY_SETTING_COUNT];
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        defaults[i] = prof ? prof->defaults[i] : s->defaults[i];
    size_t base = path->len;
    const cJSON *traits = json_get(comp, "traits");
    patch_path_push(path, "traits");
    if (traits == NULL || cJSON_IsNull(traits)) {
        cJSON *list = cJSON_CreateArray();
        cJSON_AddItemToArray(list, new_trait(s, defaults));
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
        const char *type = json_str(t, "type");
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
        patch_add(ops(out), path->buf, new_trait(s, defaults));
        goto done;
    }
    if (count > 1)
        goto done; // ambiguous; validate reports it

    patch_path_push_index(path, found_at);
    const cJSON *props = json_get(found, "properties");
    if (props == NULL || cJSON_IsNull(props)) {
        patch_path_push(path, "properties");
        patch_add(ops(out), path->buf, trait_properties(defaults));
        goto done;
    }
    if (!cJSON_IsObject(props))
        goto done; // explicit but malformed: never overridden, validate reports it
    patch_path_push(path, "properties");
    size_t props_len = path->len;
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        if (json_get(props, POLICY_SETTING_NAMES[i]) != NULL)
            continue;
        patch_path_push(path, POLICY_SETTING_NAMES[i]);
        patch_add(ops(out), path->buf, cJSON_CreateBool(defaults[i]));
        patch_path_truncate(path, props_len);
    }
done:
    patch_path_truncate(path, base);
}

// The row of a component mutate examined (its table and that table's profile or NULL): what it
// renders once the patch is applied. A missing trait or property is added with the defaults; an
// explicit or malformed value is left alone.
static void
mutated_row(const struct policy_spec *s, const struct eval_input *in, const cJSON *comp,
            const char *table, const struct policy_profile *prof, struct eval_result *out)
{
    if (table == NULL)
        return;
    struct protection pr;
    protection_of(s, comp, &pr);
    struct eval_table *t = add_table(out, comp, table);
    t->profile = prof ? prof->name : NULL;
    bool fills = prof == NULL || prof->inject;
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        int def = prof ? prof->defaults[i] : s->defaults[i];
        t->after[i] = fills && (pr.state[i] == ST_NO_TRAIT || pr.defaulted[i])
                          ? def
                          : setting_value(pr.state[i]);
    }
    // Override policies and patch traits are not mutated away: what they do still counts.
    const char *cname = json_str(comp, "name");
    struct transition_slot slot = {.component = comp,
                                   .name = cname ? cname : "",
                                   .type = json_str(comp, "type"),
                                   .table = table};
    struct bypass_result b;
    bypass_weakest(s, in->object, &slot, &b);
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        if (b.value[i] == BYPASS_ERROR)
            t->after[i] = -2;
        else if (b.value[i] == BYPASS_OFF && t->after[i] == 1)
            t->after[i] = 0;
    }
}

static void shorten(char *s, size_t max);

// An object that cannot be read faithfully is denied, by /mutate and /validate alike: judged on
// what the JSON library could hold, a table could pass that the policy would stop, and an
// answer other than a denial would leave the outcome to the webhook's failurePolicy.
static char *defused(char *s);
static const char *escaped(const char *s, char **owned);

static void
deny_unreadable(const cJSON *subject, const struct eval_input *in, struct eval_result *out)
{
    eval_deny_unreadable("Application", subject, in, out);
}

void
eval_deny_unreadable(const char *kind, const cJSON *subject, const struct eval_input *in,
                     struct eval_result *out)
{
    const char *name = json_str(json_get(subject, "metadata"), "name");
    char *owned = NULL;
    out->denied = true;
    // The reason names a JSON path, whose keys are the client's: defused like a name.
    out->deny_message = xasprintf("tableguard cannot judge %s \"%s\" faithfully: "
                                  "%s. It is denied so that no table escapes the policy",
                                  kind, escaped(name ? name : "", &owned), in->unreadable);
    free(owned);
    out->deny_message = eval_one_line(out->deny_message);
    shorten(out->deny_message, EVAL_DENY_MAX);
}

int
eval_mutate(const struct policy *p, const struct eval_input *in, struct eval_result *out)
{
    const struct policy_spec *s = policy_spec(p);
    memset(out, 0, sizeof *out);
    out->skip = precheck(s, in, in->object);
    if (out->skip == EVAL_UNREADABLE)
        deny_unreadable(in->object, in, out);
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
            // One table and profile lookup serves the patch and the row.
            const char *table = transition_component_table(s, comp);
            const struct policy_profile *prof =
                table ? policy_profile_for(s, table, in->namespace) : NULL;
            patch_path_push_index(&path, i);
            mutate_component(s, comp, prof, &path, out);
            patch_path_truncate(&path, base);
            mutated_row(s, in, comp, table, prof, out);
        }
        i++;
    }
    patch_path_free(&path);
    return 0;
}

// ---- validate
// --------------------------------------------------------------------------------

// Flux, with force on, deletes and re-creates an object whose apply fails with a message
// matching "is immutable" or "immutable field". A name could bring the word in; it never leaves
// here.
static const char word[] = "immutable", instead[] = "unchangeable";

// strcasestr(s, "immutable"): every message of a denial is searched, and a scan for the first
// letter with a compare there costs a fifth of strcasestr's.
static const char *
find_word(const char *s)
{
    for (const char *p = s; (p = strpbrk(p, "iI")) != NULL; p++)
        if ((p[1] | 0x20) == 'm' && strncasecmp(p, word, sizeof word - 1) == 0) // 'm' or 'M'
            return p;
    return NULL;
}

static char *
defused(char *s)
{
    if (find_word(s) == NULL)
        return s;
    size_t n = 0;
    for (const char *p = find_word(s); p != NULL; p = find_word(p + 1))
        n++;
    char *out = xmalloc(strlen(s) + n * (sizeof instead - sizeof word) + 1), *q = out;
    for (const char *p = s, *hit; *p; p = hit + sizeof word - 1) {
        hit = find_word(p);
        if (hit == NULL) {
            strcpy(q, p);
            break;
        }
        memcpy(q, p, (size_t)(hit - p));
        q += hit - p;
        memcpy(q, instead, sizeof instead);
        q += sizeof instead - 1;
        if (hit[sizeof word - 1] == '\0')
            break;
    }
    free(s);
    return out;
}

// A byte in x is < 0x20 or 0x7f (a control character), or is 'm' or 'M': the exact yes or no of
// the bit tricks in "Bit Twiddling Hacks" (hasless, haszero).
static bool
word_needs_look(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t del = x ^ (0x7f * ones), m = (x | 0x20 * ones) ^ ('m' * ones);
    return (((x - 0x20 * ones) & ~x) | ((del - ones) & ~del) | ((m - ones) & ~m)) & high;
}

char *
eval_one_line(char *s)
{
    // One pass, eight bytes at a time: every message of a denial goes through here, and most
    // bytes are neither control characters nor an 'm'. "immutable" in any case holds "mm", so
    // without that pair defused has nothing to do.
    unsigned char *p = (unsigned char *)s, *end = p + strlen(s);
    bool mm = false;
    while (p < end) {
        uint64_t w;
        if (end - p >= 8 && (memcpy(&w, p, 8), !word_needs_look(w))) {
            p += 8;
            continue;
        }
        for (unsigned char *stop = end - p >= 8 ? p + 8 : end; p < stop; p++) {
            if (*p < 0x20 || *p == 0x7f)
                *p = ' ';
            else if ((*p | 0x20) == 'm' && (p[1] | 0x20) == 'm')
                mm = true;
        }
    }
    return mm ? defused(s) : s;
}

struct subst {
    const char *application, *namespace, *component, *table, *rule, *pattern, *transition;
};

// Names come from the object, and messages put them between quotes: a quote or backslash in a
// name must not end its quotes, or a table named `x"; rule "fake" allowed` could forge what
// kubectl prints. Returns s when it needs no escaping, else an escaped copy also stored in
// *owned for the caller to free.
static const char *
escaped(const char *s, char **owned)
{
    *owned = NULL;
    if (strpbrk(s, "\"\\") == NULL)
        return s;
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += (*p == '"' || *p == '\\') ? 2 : 1;
    char *o = xmalloc(n + 1);
    *owned = o;
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            *o++ = '\\';
        *o++ = *p;
    }
    *o = '\0';
    return *owned;
}

// Replaces every name in v by its escaped form; subst_release frees what that allocated.
static void
subst_escape(struct subst *v, char *owned[6])
{
    const char **fields[6] = {&v->application, &v->namespace, &v->component,
                              &v->table,       &v->rule,      &v->pattern};
    for (int i = 0; i < 6; i++)
        *fields[i] = escaped(*fields[i], &owned[i]);
}

static void
subst_release(char *owned[6])
{
    for (int i = 0; i < 6; i++)
        free(owned[i]);
}

static char *
expand(const char *tmpl, const struct subst *v)
{
    const char *const values[POLICY_PLACEHOLDER_COUNT] = {[POLICY_PH_APPLICATION] = v->application,
                                                          [POLICY_PH_NAMESPACE] = v->namespace,
                                                          [POLICY_PH_COMPONENT] = v->component,
                                                          [POLICY_PH_TABLE] = v->table,
                                                          [POLICY_PH_RULE] = v->rule,
                                                          [POLICY_PH_PATTERN] = v->pattern,
                                                          [POLICY_PH_TRANSITION] =
                                                              v->transition ? v->transition : ""};
    const char *const *names = POLICY_PLACEHOLDER_NAMES;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (f == NULL)
        return xstrdup(tmpl);
    for (const char *p = tmpl; *p; p++) {
        size_t i = 0, n = POLICY_PLACEHOLDER_COUNT;
        if (*p == '{') {
            for (; i < n; i++) {
                size_t k = strlen(names[i]);
                if (strncmp(p + 1, names[i], k) == 0 && p[1 + k] == '}')
                    break;
            }
        }
        if (*p == '{' && i < n) {
            fputs(values[i], f);
            p += strlen(names[i]) + 1;
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
    if (pr->bypassed[setting])
        return xconcat(HEAD_PIECES, pr->why[setting], NULL);
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
    if (f->rule->message) {
        char *w = xstrdup(f->message);
        shorten(w, EVAL_WARNING_MAX);
        return w;
    }
    char *t;
    char *w = xconcat("table \"", escaped(f->table, &t), "\": ", POLICY_SETTING_NAMES[setting],
                      " should be ", r->require[setting] ? "true" : "false", " (rule ", r->name,
                      ")", NULL);
    free(t);
    shorten(w, EVAL_WARNING_MAX);
    return w;
}

static const char *
first_match(const struct policy_globs *g, const char *s)
{
    return policy_globs_first(g, s);
}

static void
add_finding(struct eval_result *out, const struct eval_finding *f)
{
    out->findings = xgrow(out->findings, out->finding_count, sizeof *out->findings);
    out->findings[out->finding_count++] = *f;
}

// kubectl prints every warning on its own line and the API server keeps only a few kilobytes of
// them: past EVAL_WARNINGS_LISTED the rest are counted, and one last warning says how many.
// True when one more warning is listed; otherwise counts it as unlisted, so that its text (one
// per table of a large Application) is not built only to be dropped.
static bool
warning_listed(struct eval_result *out)
{
    if (out->warning_count < EVAL_WARNINGS_LISTED)
        return true;
    out->warnings_unlisted++;
    return false;
}

static void
add_warning(struct eval_result *out, char *w)
{
    if (out->warning_count == EVAL_WARNINGS_LISTED) {
        out->warnings_unlisted++;
        free(w);
        return;
    }
    w = eval_one_line(w);
    shorten(w, EVAL_WARNING_MAX);
    out->warnings = xgrow(out->warnings, out->warning_count, sizeof *out->warnings);
    out->warnings[out->warning_count++] = w;
}

static char *
waiver_text(const struct eval_finding *f)
{
    // Who let it through comes first: a long table name is what a cut loses.
    const struct exception *e = f->exception;
    char *owned;
    char *w =
        xconcat("exception ", e->name, " (", e->ticket, ", expires ", e->expires_text, ") waives ",
                f->rule->name, " on table \"", escaped(f->table, &owned), "\"", NULL);
    free(owned);
    return w;
}

// The exception that waives f, or NULL: tried only against the exceptions in scope of the
// request (in force, namespace and Application matching), worked out once per request.
static const struct exception *
waiver_for(const struct policy_spec *s, const struct eval_input *in, const char *app,
           const struct eval_finding *f, struct eval_result *out)
{
    if (in->exceptions == NULL)
        return NULL;
    if (!out->view_ready || (out->view_app != app && strcmp(out->view_app, app ? app : "") != 0)) {
        exceptions_view_init(&out->view, in->exceptions, app, in->namespace, in->now,
                             s->exceptions_max_days);
        out->view_ready = true;
        out->view_app = app ? app : "";
    }
    return exceptions_waiver_among(&out->view, f->rule->name, f->table);
}

// Makes f's message one line without "immutable", finds the exception that waives it, and adds
// it to `out` (a waived finding with the waiver's warning, named on its table's row). Returns
// true when the rule's own warning is due instead.
static bool
add_judged(const struct policy_spec *s, const struct eval_input *in, const char *app,
           struct eval_finding *f, struct eval_table *row, struct eval_result *out)
{
    f->message = eval_one_line(f->message);
    f->exception = waiver_for(s, in, app, f, out);
    add_finding(out, f);
    if (f->exception != NULL) {
        row->exception = f->exception->name;
        if (warning_listed(out))
            add_warning(out, waiver_text(f));
        return false;
    }
    return f->rule->action == POLICY_WARN;
}

// A guarded object's settings as ACK reads them: an absent field is false.
static void
object_protection(const struct transition_slot *slot, struct protection *pr)
{
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        const cJSON *v = kinds_get(slot->object, slot->kind->setting_from[i]);
        pr->why[i][0] = '\0';
        pr->defaulted[i] = v == NULL;
        if (v == NULL || cJSON_IsBool(v)) {
            pr->state[i] = cJSON_IsTrue(v) ? ST_ON : ST_OFF;
        } else {
            char field[96];
            field_path(slot->kind->setting_from[i], field, sizeof field);
            not_boolean(pr, i, field, v);
        }
    }
}

// The settings of the table in `slot` of Application `app`: its trait (or the guarded object's
// fields), then the weakest that override policies and patch traits make of them.
static void
slot_protection(const struct policy_spec *s, const cJSON *app, const struct transition_slot *slot,
                struct protection *pr)
{
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        pr->bypassed[i] = false;
    if (slot->object != NULL) {
        object_protection(slot, pr);
        return;
    }
    protection_of(s, slot->component, pr);
    struct bypass_result b;
    bypass_weakest(s, app, slot, &b);
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        bool worse = (b.value[i] == BYPASS_ERROR && pr->state[i] != ST_BAD) ||
                     (b.value[i] == BYPASS_OFF && pr->state[i] == ST_ON);
        if (!worse)
            continue;
        pr->state[i] = b.value[i] == BYPASS_ERROR ? ST_BAD : ST_OFF;
        pr->bypassed[i] = true;
        snprintf(pr->why[i], sizeof pr->why[i], "%s", b.why[i]);
    }
}

static char *
object_message(const struct subst *v, const struct transition_slot *slot,
               const struct policy_rule *r, int setting, const struct protection *pr)
{
    const char *want = r->require[setting] ? "true" : "false";
    char field[96];
    field_path(slot->kind->setting_from[setting], field, sizeof field);
    const char *have = pr->state[setting] == ST_BAD ? pr->why[setting]
                       : pr->defaulted[setting] ? "the field is absent, which ACK reads as false"
                       : pr->state[setting] == ST_ON ? "it is true"
                                                     : "it is false";
    return xconcat("Application \"", v->namespace, "/", v->application, "\" table \"", v->table,
                   "\": rule \"", v->rule, "\" (tables ", v->pattern, ") requires ",
                   POLICY_SETTING_NAMES[setting], ": ", want, "; component \"", v->component,
                   "\" carries the ", slot->kind->kind, " \"", slot->object_name,
                   "\" directly and ", have, ": set ", field, ": ", want, " in that object", NULL);
}

static void
validate_slot(const struct policy_spec *s, const struct eval_input *in, const char *app,
              const struct transition_slot *slot, struct eval_result *out)
{
    const char *table = slot->table;
    struct protection pr;
    slot_protection(s, in->object, slot, &pr);
    struct eval_table *row = add_row(out, slot->name, table);
    const struct policy_profile *prof = policy_profile_for(s, table, in->namespace);
    row->profile = prof ? prof->name : NULL;
    for (int k = 0; k < POLICY_SETTING_COUNT; k++)
        row->after[k] = setting_value(pr.state[k]);
    for (size_t r = 0; r < s->rule_count; r++) {
        const struct policy_rule *rule = &s->rules[r];
        if (rule->forbid != 0)
            continue;
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
            struct subst v = {app, in->namespace, slot->name, table, rule->name, pattern, NULL};
            struct eval_finding f = {rule,           pattern, xstrdup(v.component),
                                     xstrdup(table), NULL,    NULL};
            char *owned[6];
            subst_escape(&v, owned);
            f.message = rule->message  ? expand(rule->message, &v)
                        : slot->object ? object_message(&v, slot, rule, k, &pr)
                                       : builtin_message(s, &v, rule, k, &pr);
            subst_release(owned);
            if (add_judged(s, in, app, &f, row, out) && warning_listed(out))
                add_warning(out, warning_text(&f, k, rule));
        }
    }
}

// ---- transitions -------------------------------------------------------------------------------

// What the transition does to the data, and the ways through; pieces, as for builtin_message.
static char *
forbid_message(const struct subst *v, const struct transition_change *c)
{
    const struct transition_slot *o = c->old, *n = c->now;
    const char *kind = o->kind ? o->kind->kind : kinds_rendered()->kind;
    const char *q = "\"";
    // The names in oldObject and object, escaped like those in v (see escaped).
    char *own[6] = {0};
    const char *oname = escaped(o->name, &own[0]), *otable = escaped(o->table, &own[1]);
    const char *nname = n ? escaped(n->name, &own[2]) : NULL;
    const char *ntable = n ? escaped(n->table, &own[3]) : NULL;
    const char *otype = o->type ? escaped(o->type, &own[4]) : NULL;
    const char *ntype = n && n->type          ? escaped(n->type, &own[5])
                        : c->new_type != NULL ? escaped(c->new_type, &own[5])
                                              : NULL;
    char *what;
    switch (c->kind) {
    case POLICY_DELETE:
        what = xconcat("deleting the Application makes KubeVela delete the ", kind,
                       " of component \"", oname, "\", and then the DynamoDB table \"", otable,
                       "\" is deleted with its data", NULL);
        break;
    case POLICY_RENAME:
        what =
            strcmp(otable, ntable) != 0
                ? xconcat("component \"", nname, "\" changes its table name from \"", otable,
                          "\" to \"", ntable, "\": a new table is created and the old one is ",
                          "deleted with its data (set the table name back to \"", otable, "\")",
                          NULL)
                : xconcat("the table moves from component \"", oname, "\" to \"", nname,
                          "\": KubeVela deletes the ", kind, " of \"", oname,
                          "\", and the table is deleted with its data (keep the component name \"",
                          oname, "\")", NULL);
        break;
    default:
        what = ntype != NULL
                   ? xconcat("component \"", oname, "\" changes its type from \"", otype,
                             "\" to \"", ntype, "\": KubeVela deletes the ", kind,
                             " it rendered, and the table is deleted with its data", NULL)
                   : xconcat("component \"", oname, "\" is removed: KubeVela deletes its ", kind,
                             ", and the table is deleted with its data", NULL);
        break;
    }
    char *m = xconcat(
        "Application \"", v->namespace, "/", v->application, "\" table \"", v->table, "\": rule \"",
        v->rule, "\" (tables ", v->pattern, ") forbids ", v->transition, "; ", what,
        ". To let the table go, first keep it",
        c->kind == POLICY_DELETE ? ": add the finalizer app.oam.dev/orphan-resource (vela delete "
                                   "--orphan does this) or"
                                 : " in an earlier change: add the finalizer "
                                   "app.oam.dev/orphan-resource or",
        " a garbage-collect policy rule {selector: {componentNames: [", oname,
        "]}, strategy: never}; or ask for an approved exception to rule \"", v->rule, q, NULL);
    free(what);
    subst_release(own);
    return m;
}

static void
forbid_findings(const struct policy_spec *s, const struct eval_input *in, const char *app,
                const struct transition_change *c, struct eval_table *row, struct eval_result *out)
{
    for (size_t r = 0; r < s->rule_count; r++) {
        const struct policy_rule *rule = &s->rules[r];
        if ((rule->forbid & c->kind) == 0 || !policy_globs_match(&rule->namespaces, in->namespace))
            continue;
        const char *pattern = first_match(&rule->tables, c->old->table);
        if (pattern == NULL && c->kind == POLICY_RENAME)
            pattern = first_match(&rule->tables, c->now->table);
        if (pattern == NULL)
            continue;
        struct subst v = {app,     in->namespace,           c->old->name, c->old->table, rule->name,
                          pattern, transition_name(c->kind)};
        struct eval_finding f = {rule, pattern, xstrdup(v.component), xstrdup(v.table), NULL, NULL};
        char *owned[6];
        subst_escape(&v, owned);
        f.message = rule->message ? expand(rule->message, &v) : forbid_message(&v, c);
        if (add_judged(s, in, app, &f, row, out) && warning_listed(out)) {
            add_warning(out, rule->message ? xstrdup(f.message)
                                           : xconcat("table \"", v.table, "\": ", v.transition,
                                                     " forbidden (rule ", rule->name, ")", NULL));
        }
        subst_release(owned);
    }
}

// Judges what the request does to the tables of oldObject. `now` holds object's slots (NULL on
// DELETE), whose rows start at out->tables[first_row].
static void
judge_transitions(const struct policy_spec *s, const struct eval_input *in, const char *app,
                  const struct transition_slots *now, size_t first_row, struct eval_result *out)
{
    struct transition_slots old;
    transition_slots(s, in->old_object, &old);
    struct transition_change *changes = xcalloc(old.count ? old.count : 1, sizeof *changes);
    transition_compare(in->old_object, &old, now ? in->object : NULL, now, changes, NULL);
    for (size_t i = 0; i < old.count; i++) {
        const struct transition_change *c = &changes[i];
        struct eval_table *row = NULL;
        if (c->now != NULL)
            row = &out->tables[first_row + (size_t)(c->now - now->items)];
        if (row == NULL || row->old_table != NULL)
            row = add_row(out, c->old->name, NULL); // gone, or a second table moved onto one place
        struct protection pr;
        slot_protection(s, in->old_object, c->old, &pr);
        row->old_table = xstrdup(c->old->table);
        for (int k = 0; k < POLICY_SETTING_COUNT; k++)
            row->before[k] = setting_value(pr.state[k]);
        if (c->kind == 0 || c->kept != TRANSITION_NOT_KEPT)
            continue;
        row->transition = transition_name(c->kind);
        forbid_findings(s, in, app, c, row, out);
    }
    free(changes);
    transition_slots_free(&old);
}

// Writes v in decimal at q (room for JSONW_UINT_MAX bytes); returns the end.
static char *
put_size(char *q, size_t v)
{
    return q + jsonw_format_uint(q, v);
}

static bool
denies(const struct eval_finding *f)
{
    return f->rule->action == POLICY_DENY && f->exception == NULL;
}

// Sized first and written into one allocation: it is built for every denial.
static char *
deny_message(const struct policy *p, const struct eval_result *out)
{
    static const char more[] = " more (each is in the audit log and in `tableguard check`)";
    size_t n = 0;
    for (size_t i = 0; i < out->finding_count; i++)
        n += denies(&out->findings[i]);
    char *owned;
    const char *name = escaped(policy_spec(p)->name, &owned);
    size_t cap = strlen(name) + 64 + sizeof more + 32, k = 0;
    for (size_t i = 0; i < out->finding_count && k < EVAL_DENY_LISTED; i++)
        if (denies(&out->findings[i])) {
            cap += strlen(out->findings[i].message) + 32;
            k++;
        }
    char *buf = xmalloc(cap), *q = buf;
    q = stpcpy(stpcpy(stpcpy(q, "tableguard policy \""), name), "\": ");
    q = stpcpy(put_size(q, n), n == 1 ? " violation: " : " violations: ");
    free(owned);
    k = 0;
    for (size_t i = 0; i < out->finding_count && k < EVAL_DENY_LISTED; i++) {
        if (!denies(&out->findings[i]))
            continue;
        if (n > 1)
            q = stpcpy(put_size(stpcpy(q, k ? " [" : "["), k + 1), "] ");
        q = stpcpy(q, out->findings[i].message);
        k++;
    }
    if (n > k)
        q = stpcpy(put_size(stpcpy(q, " ... and "), n - k), more);
    *q = '\0';
    buf = eval_one_line(buf); // the policy's name too
    // kubectl prints the message whole; a megabyte table name must not make it a megabyte.
    shorten(buf, EVAL_DENY_MAX);
    return buf;
}

int
eval_validate(const struct policy *p, const struct eval_input *in, struct eval_result *out)
{
    const struct policy_spec *s = policy_spec(p);
    memset(out, 0, sizeof *out);
    bool deleting = is_delete(in);
    const cJSON *subject = deleting ? in->old_object : in->object;
    out->skip = precheck(s, in, subject);
    if (out->skip == EVAL_UNREADABLE)
        deny_unreadable(subject, in, out);
    if (out->skip != EVAL_EVALUATED)
        return 0;
    const cJSON *meta = json_get(subject, "metadata");
    const char *app = json_str(meta, "name");
    if (app == NULL)
        app = "";
    struct transition_slots now = {0};
    if (!deleting) {
        transition_slots(s, in->object, &now);
        for (size_t i = 0; i < now.count; i++) {
            if (i + 1 < now.count)
                json_prefetch(now.items[i + 1].component);
            validate_slot(s, in, app, &now.items[i], out);
        }
    }
    // An UPDATE without a readable oldObject is judged on the object alone.
    if (deleting ||
        (in->old_object != NULL && in->operation != NULL && strcmp(in->operation, "UPDATE") == 0))
        judge_transitions(s, in, app, deleting ? NULL : &now, 0, out);
    transition_slots_free(&now);
    eval_conclude(p, out);
    return 0;
}

// ---- Shared with the evaluation of guarded resources (policy/resource.c) -----------------------

const char *
eval_first_match(const struct policy_globs *g, const char *s)
{
    return first_match(g, s);
}

char *
eval_expand(const char *tmpl, const struct eval_subst *v)
{
    struct subst sv = {v->application, v->namespace, v->component, v->table,
                       v->rule,        v->pattern,   v->transition};
    char *owned[6];
    subst_escape(&sv, owned);
    char *m = expand(tmpl, &sv);
    subst_release(owned);
    return m;
}

const char *
eval_escape(const char *s, char **owned)
{
    return escaped(s, owned);
}

void
eval_add_finding(const struct policy_spec *s, const struct eval_input *in, const char *app,
                 struct eval_table *row, struct eval_result *out, const struct eval_finding *f,
                 int setting)
{
    struct eval_finding g = *f;
    g.message = eval_one_line(g.message);
    g.exception = waiver_for(s, in, app, &g, out);
    add_finding(out, &g);
    if (g.exception != NULL) {
        row->exception = g.exception->name;
        if (warning_listed(out))
            add_warning(out, waiver_text(&g));
    } else if (g.rule->action == POLICY_WARN && warning_listed(out)) {
        add_warning(out, setting >= 0 && g.rule->message == NULL ? warning_text(&g, setting, g.rule)
                                                                 : xstrdup(g.message));
    }
}

void
eval_conclude(const struct policy *p, struct eval_result *out)
{
    for (size_t i = 0; i < out->finding_count; i++)
        out->denied |=
            out->findings[i].rule->action == POLICY_DENY && out->findings[i].exception == NULL;
    if (out->denied)
        out->deny_message = deny_message(p, out);
    if (out->warnings_unlisted > 0) {
        char more[EVAL_WARNING_MAX + 1];
        snprintf(more, sizeof more,
                 "... and %zu more warnings (each is in the audit log and in `tableguard check`)",
                 out->warnings_unlisted);
        out->warnings = xgrow(out->warnings, out->warning_count, sizeof *out->warnings);
        out->warnings[out->warning_count++] = xstrdup(more);
    }
}

struct eval_table *
eval_add_table(struct eval_result *out, const char *component, const char *table)
{
    return add_row(out, component, table);
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

// SPDX-License-Identifier: Apache-2.0
// Override policies and patch traits as KubeVela applies them to the object a component renders.
#include "policy/bypass.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/jsonr.h"
#include "policy/kinds.h"

// An error is weaker than "off", which is weaker than nothing.
static int
rank(int value)
{
    return value == BYPASS_ERROR ? 0 : value == BYPASS_OFF ? 1 : 2;
}

static void weaken(struct bypass_result *out, int i, int value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Records `value` for setting i when it is weaker than what is there; the first of equals stays.
static void
weaken(struct bypass_result *out, int i, int value, const char *fmt, ...)
{
    if (rank(value) >= rank(out->value[i]))
        return;
    out->value[i] = value;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->why[i], sizeof out->why[i], fmt, ap);
    va_end(ap);
}

static void
weaken_all(struct bypass_result *out, const char *why)
{
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        weaken(out, i, BYPASS_ERROR, "%s", why);
}

static const char *
kind_of(const cJSON *v)
{
    return cJSON_IsString(v)   ? "a string"
           : cJSON_IsNumber(v) ? "a number"
           : cJSON_IsNull(v)   ? "null"
           : cJSON_IsArray(v)  ? "a list"
           : cJSON_IsObject(v) ? "a mapping"
                               : "a boolean";
}

// ---- json-patch and json-merge-patch traits ----------------------------------------------------

// The JSON pointer of the rendered object's field for setting i, e.g.
// /spec/deletionProtectionEnabled.
static void
field_pointer(int i, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const char *const *p = kinds_rendered()->setting_from[i]; *p != NULL && used < len; p++) {
        int w = snprintf(buf + used, len - used, "/%s", *p);
        used += w > 0 ? (size_t)w : 0;
    }
}

// When `path` is `field` or one of its parents, the rest of `field` below it ("" or "/x/y").
static const char *
below(const char *path, const char *field)
{
    size_t n = strlen(path);
    if (strncmp(path, field, n) == 0 && (field[n] == '\0' || field[n] == '/'))
        return field + n;
    return NULL;
}

// The item at JSON pointer `rest` under `v` (tokens hold no escapes here), or NULL.
static const cJSON *
at_pointer(const cJSON *v, const char *rest)
{
    char tok[64];
    while (*rest == '/' && v != NULL) {
        const char *end = strchr(rest + 1, '/');
        size_t n = end ? (size_t)(end - rest - 1) : strlen(rest + 1);
        snprintf(tok, sizeof tok, "%.*s", (int)n, rest + 1);
        v = cJSON_IsObject(v) ? json_get(v, tok) : NULL;
        rest += n + 1;
    }
    return v;
}

static void
json_patch(const cJSON *trait, const char *where, struct bypass_result *out)
{
    const cJSON *ops = json_get(json_get(trait, "properties"), "operations");
    char why[320];
    if (!cJSON_IsArray(ops)) {
        snprintf(why, sizeof why,
                 "%s has a json-patch trait without a list of operations in properties.operations, "
                 "which cannot be judged: fix the trait",
                 where);
        weaken_all(out, why);
        return;
    }
    size_t k = 0;
    const cJSON *op;
    cJSON_ArrayForEach(op, ops)
    {
        k++;
        const char *name = json_str(op, "op"), *path = json_str(op, "path"),
                   *from = json_str(op, "from");
        if (name == NULL || path == NULL) {
            snprintf(why, sizeof why,
                     "%s has a json-patch operation %zu without a string op and path, which cannot "
                     "be judged: fix the trait",
                     where, k);
            weaken_all(out, why);
            continue;
        }
        for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
            char field[96];
            field_pointer(i, field, sizeof field);
            const char *rest = below(path, field);
            if (strcmp(name, "move") == 0 && from != NULL && below(from, field) != NULL)
                weaken(out, i, BYPASS_OFF,
                       "%s has a json-patch operation %zu that moves %s away (ACK reads an absent "
                       "field as false): remove that operation",
                       where, k, field);
            if (rest == NULL || strcmp(name, "test") == 0)
                continue;
            if (strcmp(name, "remove") == 0) {
                weaken(out, i, BYPASS_OFF,
                       "%s has a json-patch operation %zu that removes %s (ACK reads an absent "
                       "field as false): remove that operation",
                       where, k, field);
            } else if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
                const cJSON *v = at_pointer(json_get(op, "value"), rest);
                if (v == NULL)
                    weaken(
                        out, i, BYPASS_OFF,
                        "%s has a json-patch operation %zu that writes %.40s without %s (ACK reads "
                        "an absent field as false): remove that operation",
                        where, k, path, field);
                else if (cJSON_IsFalse(v))
                    weaken(out, i, BYPASS_OFF,
                           "%s has a json-patch operation %zu that sets %s to false: remove that "
                           "operation",
                           where, k, field);
                else if (!cJSON_IsBool(v))
                    weaken(out, i, BYPASS_ERROR,
                           "%s has a json-patch operation %zu that sets %s to %s, not a boolean: "
                           "remove that operation",
                           where, k, field, kind_of(v));
            } else {
                weaken(out, i, BYPASS_ERROR,
                       "%s has a json-patch operation %zu (%.20s) on %s, which cannot be judged: "
                       "remove that operation",
                       where, k, name, field);
            }
        }
    }
}

static void
json_merge_patch(const cJSON *trait, const char *where, struct bypass_result *out)
{
    const cJSON *patch = json_get(trait, "properties");
    if (patch == NULL || cJSON_IsNull(patch))
        return;
    char why[320];
    if (!cJSON_IsObject(patch)) {
        snprintf(why, sizeof why,
                 "%s has a json-merge-patch trait whose properties are %s, not a mapping, which "
                 "cannot be judged: fix the trait",
                 where, kind_of(patch));
        weaken_all(out, why);
        return;
    }
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        char field[96];
        field_pointer(i, field, sizeof field);
        const cJSON *v = patch;
        for (const char *const *p = kinds_rendered()->setting_from[i]; *p != NULL && v != NULL;
             p++) {
            if (cJSON_IsNull(v))
                break; // a parent set to null deletes the field
            if (!cJSON_IsObject(v)) {
                weaken(out, i, BYPASS_ERROR,
                       "%s has a json-merge-patch trait that replaces a parent of %s with %s, "
                       "which cannot be judged: fix the trait",
                       where, field, kind_of(v));
                v = NULL;
                break;
            }
            v = json_get(v, *p);
        }
        if (v == NULL || cJSON_IsTrue(v))
            continue;
        if (cJSON_IsNull(v))
            weaken(out, i, BYPASS_OFF,
                   "%s has a json-merge-patch trait that deletes %s (null; ACK reads an absent "
                   "field as false): remove it from the trait",
                   where, field);
        else if (cJSON_IsFalse(v))
            weaken(
                out, i, BYPASS_OFF,
                "%s has a json-merge-patch trait that sets %s to false: remove it from the trait",
                where, field);
        else
            weaken(out, i, BYPASS_ERROR,
                   "%s has a json-merge-patch trait that sets %s to %s, not a boolean: remove it "
                   "from the trait",
                   where, field, kind_of(v));
    }
}

// The patch traits of a list (a component's, or an override's for it).
static void
patch_traits(const cJSON *traits, const char *where, struct bypass_result *out)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, (cJSON_IsArray(traits) ? traits : NULL))
    {
        const char *type = json_str(t, "type");
        if (type != NULL && strcmp(type, "json-patch") == 0)
            json_patch(t, where, out);
        else if (type != NULL && strcmp(type, "json-merge-patch") == 0)
            json_merge_patch(t, where, out);
    }
}

// ---- override policies -------------------------------------------------------------------------

// What an override sets on the protection trait of the component.
static void
override_trait(const struct policy_spec *s, const cJSON *t, const char *where,
               struct bypass_result *out)
{
    const cJSON *disable = json_get(t, "disable");
    char why[320];
    if (cJSON_IsTrue(disable)) {
        snprintf(why, sizeof why,
                 "%s disables the %.60s trait (disable: true), leaving the table unprotected: "
                 "remove the disable",
                 where, s->trait_type);
        for (int i = 0; i < POLICY_SETTING_COUNT; i++)
            weaken(out, i, BYPASS_OFF, "%s", why);
    } else if (disable != NULL && !cJSON_IsBool(disable) && !cJSON_IsNull(disable)) {
        snprintf(why, sizeof why,
                 "%s has disable: %s on the %.60s trait, not a boolean: remove the disable", where,
                 kind_of(disable), s->trait_type);
        weaken_all(out, why);
    }
    const cJSON *props = json_get(t, "properties");
    if (props == NULL || cJSON_IsNull(props))
        return;
    if (!cJSON_IsObject(props)) {
        snprintf(why, sizeof why,
                 "%s gives the %.60s trait properties that are %s, not a mapping: fix the override",
                 where, s->trait_type, kind_of(props));
        weaken_all(out, why);
        return;
    }
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        const cJSON *v = json_get(props, POLICY_SETTING_NAMES[i]);
        if (cJSON_IsFalse(v))
            weaken(out, i, BYPASS_OFF,
                   "%s sets %s: false on the %.60s trait: remove it from the override, or set "
                   "it to true",
                   where, POLICY_SETTING_NAMES[i], s->trait_type);
        else if (v != NULL && !cJSON_IsBool(v))
            weaken(out, i, BYPASS_ERROR,
                   "%s sets %s on the %.60s trait to %s, not a boolean: write true, or remove it "
                   "from the override",
                   where, POLICY_SETTING_NAMES[i], s->trait_type, kind_of(v));
    }
}

// True when the override entry `c` (one of properties.components) applies to the slot's
// component; -1 when its name or type cannot be read.
static int
names_component(const cJSON *c, const struct transition_slot *slot)
{
    const cJSON *name = json_get(c, "name");
    const cJSON *type = json_get(c, "type");
    if ((name != NULL && !cJSON_IsString(name) && !cJSON_IsNull(name)) ||
        (type != NULL && !cJSON_IsString(type) && !cJSON_IsNull(type)))
        return -1;
    if (cJSON_IsString(name) && name->valuestring[0] != '\0' &&
        fnmatch(name->valuestring, slot->name, 0) != 0)
        return 0;
    if (cJSON_IsString(type) && type->valuestring[0] != '\0' &&
        strcmp(type->valuestring, slot->type) != 0)
        return 0;
    return 1;
}

static void
override_policy(const struct policy_spec *s, const cJSON *policy, const char *pname,
                const struct transition_slot *slot, struct bypass_result *out)
{
    char where[160], why[320];
    snprintf(where, sizeof where, "override policy \"%.60s\"", pname);
    const cJSON *props = json_get(policy, "properties");
    const cJSON *comps = json_get(props, "components");
    const cJSON *selector = json_get(props, "selector");
    if (!cJSON_IsArray(comps)) {
        snprintf(why, sizeof why,
                 "%s has no list of components in properties.components, so which tables it "
                 "changes cannot be judged: fix the policy",
                 where);
        weaken_all(out, why);
        return;
    }
    if (cJSON_IsArray(selector)) {
        bool listed = false;
        const cJSON *n;
        cJSON_ArrayForEach(n, selector) listed |=
            cJSON_IsString(n) && strcmp(n->valuestring, slot->name) == 0;
        if (!listed)
            return;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, comps)
    {
        int named = cJSON_IsObject(c) ? names_component(c, slot) : -1;
        if (named < 0) {
            snprintf(why, sizeof why,
                     "%s has a component entry whose name or type cannot be read, so which "
                     "tables it changes cannot be judged: fix the policy",
                     where);
            weaken_all(out, why);
            continue;
        }
        if (named == 0)
            continue;
        const cJSON *traits = json_get(c, "traits");
        if (traits != NULL && !cJSON_IsArray(traits) && !cJSON_IsNull(traits)) {
            snprintf(why, sizeof why,
                     "%s gives component \"%.60s\" traits that are not a list: fix the policy",
                     where, slot->name);
            weaken_all(out, why);
            continue;
        }
        const cJSON *t;
        cJSON_ArrayForEach(t, (cJSON_IsArray(traits) ? traits : NULL))
        {
            const char *type = json_str(t, "type");
            if (type != NULL && strcmp(type, s->trait_type) == 0)
                override_trait(s, t, where, out);
        }
        patch_traits(traits, where, out);
    }
}

void
bypass_weakest(const struct policy_spec *s, const cJSON *app, const struct transition_slot *slot,
               struct bypass_result *out)
{
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        out->value[i] = BYPASS_NONE;
        out->why[i][0] = '\0';
    }
    if (slot->object != NULL)
        return;
    // snprintf(where, .., "component \"%.60s\"", name) without the printf machinery: this runs
    // for every table of object and of oldObject.
    char where[160];
    size_t n = strnlen(slot->name, 60);
    memcpy(where, "component \"", 11);
    memcpy(where + 11, slot->name, n);
    memcpy(where + 11 + n, "\"", 2);
    patch_traits(json_get(slot->component, "traits"), where, out);
    const cJSON *policies = json_get(json_get(app, "spec"), "policies");
    const cJSON *p;
    cJSON_ArrayForEach(p, (cJSON_IsArray(policies) ? policies : NULL))
    {
        const char *type = json_str(p, "type"), *name = json_str(p, "name");
        if (type != NULL && strcmp(type, "override") == 0)
            override_policy(s, p, name ? name : "", slot, out);
    }
}

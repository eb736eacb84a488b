// SPDX-License-Identifier: Apache-2.0
// Pairing the tables of oldObject with those of object, and the KubeVela keep rules.
#include "policy/transition.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"
#include "util/jsonr.h"

#define ORPHAN_FINALIZER "app.oam.dev/orphan-resource"

bool
transition_is_application(const cJSON *obj)
{
    const char *api = json_str(obj, "apiVersion"), *kind = json_str(obj, "kind");
    return cJSON_IsObject(obj) && api != NULL && kind != NULL &&
           strncmp(api, "core.oam.dev/", 13) == 0 && strcmp(kind, "Application") == 0;
}

const char *
transition_component_table(const struct policy_spec *s, const cJSON *comp)
{
    const cJSON *v = comp;
    for (size_t i = 0; i < s->table_name_depth && v != NULL; i++)
        v = cJSON_GetObjectItemCaseSensitive(v, s->table_name_path[i]);
    if (cJSON_IsString(v) && v->valuestring[0] != '\0')
        return v->valuestring;
    return json_str(comp, "name");
}

static void
push(struct transition_slots *out, const struct transition_slot *slot)
{
    size_t n = out->count;
    if ((n & (n - 1)) == 0)
        out->items = xrealloc(out->items, (n ? 2 * n : 1) * sizeof *out->items);
    out->items[out->count++] = *slot;
}

// The guarded objects a k8s-objects component carries in properties.objects.
static void
carried_objects(const struct policy_spec *s, const cJSON *comp, struct transition_slot *slot,
                struct transition_slots *out)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(comp, "properties");
    const cJSON *objects = cJSON_GetObjectItemCaseSensitive(props, "objects");
    const cJSON *o;
    cJSON_ArrayForEach(o, (cJSON_IsArray(objects) ? objects : NULL))
    {
        const struct kinds_row *row = kinds_find(s, json_str(o, "apiVersion"), json_str(o, "kind"));
        if (!cJSON_IsObject(o) || row == NULL)
            continue;
        const cJSON *t = kinds_get(o, row->table_name_from);
        const char *oname = json_str(cJSON_GetObjectItemCaseSensitive(o, "metadata"), "name");
        slot->object = o;
        slot->kind = row;
        slot->object_name = oname ? oname : "";
        // A guarded object without a readable table name is still a table, named after itself.
        slot->table = cJSON_IsString(t) && t->valuestring[0] ? t->valuestring : slot->object_name;
        push(out, slot);
    }
}

void
transition_slots(const struct policy_spec *s, const cJSON *app, struct transition_slots *out)
{
    memset(out, 0, sizeof *out);
    if (!transition_is_application(app))
        return;
    const cJSON *comps = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(app, "spec"), "components");
    const cJSON *comp;
    size_t i = 0;
    cJSON_ArrayForEach(comp, (cJSON_IsArray(comps) ? comps : NULL))
    {
        const char *type = json_str(comp, "type"), *name = json_str(comp, "name");
        struct transition_slot slot = {comp, NULL, NULL, name ? name : "", type, "", NULL, i++};
        if (!cJSON_IsObject(comp) || type == NULL)
            continue;
        if (strcmp(type, "k8s-objects") == 0) {
            carried_objects(s, comp, &slot, out);
        } else if (policy_globs_match(&s->component_types, type)) {
            slot.table = transition_component_table(s, comp);
            if (slot.table != NULL)
                push(out, &slot);
        }
    }
}

void
transition_slots_free(struct transition_slots *slots)
{
    if (slots == NULL)
        return;
    free(slots->items);
    memset(slots, 0, sizeof *slots);
}

// ---- keep rules --------------------------------------------------------------------------------

static bool
has_orphan_finalizer(const cJSON *app)
{
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(app, "metadata"), "finalizers");
    const cJSON *f;
    cJSON_ArrayForEach(f, (cJSON_IsArray(fin) ? fin : NULL))
    {
        if (cJSON_IsString(f) && strcmp(f->valuestring, ORPHAN_FINALIZER) == 0)
            return true;
    }
    return false;
}

// The type of the component named `name` in `app`, when it is there but holds no table.
static const char *
type_now(const cJSON *app, const char *name)
{
    const cJSON *comps = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(app, "spec"), "components");
    const cJSON *c;
    cJSON_ArrayForEach(c, (cJSON_IsArray(comps) ? comps : NULL))
    {
        const char *n = json_str(c, "name");
        if (n != NULL && strcmp(n, name) == 0)
            return json_str(c, "type");
    }
    return NULL;
}

static bool
list_has(const cJSON *list, const char *s)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, list)
    {
        if (cJSON_IsString(v) && s != NULL && strcmp(v->valuestring, s) == 0)
            return true;
    }
    return false;
}

// KubeVela's rule selector: every field given must match (an empty selector selects nothing
// here, which errs on the side of the table). The object a component renders is a
// DynamoDBTable named after the component.
static bool
selects(const cJSON *sel, const struct transition_slot *slot)
{
    static const char *const known[] = {"componentNames", "componentTypes", "oamTypes",
                                        "resourceTypes", "resourceNames"};
    const char *values[] = {slot->name, slot->type, "COMPONENT",
                            slot->kind ? slot->kind->kind : kinds_rendered()->kind,
                            slot->object ? slot->object_name : slot->name};
    if (!cJSON_IsObject(sel) || cJSON_GetArraySize(sel) == 0)
        return false;
    const cJSON *field;
    cJSON_ArrayForEach(field, sel)
    {
        size_t i = 0;
        while (i < 5 && strcmp(field->string, known[i]) != 0)
            i++;
        if (i == 5 || !cJSON_IsArray(field) || !list_has(field, values[i]))
            return false; // traitTypes, or a field KubeVela does not know: no table matches
    }
    return true;
}

static bool
gc_keeps(const cJSON *app, const struct transition_slot *slot)
{
    const cJSON *policies =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(app, "spec"), "policies");
    const cJSON *p;
    cJSON_ArrayForEach(p, (cJSON_IsArray(policies) ? policies : NULL))
    {
        const char *type = json_str(p, "type");
        if (type == NULL || strcmp(type, "garbage-collect") != 0)
            continue;
        const cJSON *rules = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(p, "properties"), "rules");
        const cJSON *r;
        cJSON_ArrayForEach(r, (cJSON_IsArray(rules) ? rules : NULL))
        {
            const char *strategy = json_str(r, "strategy"), *prop = json_str(r, "propagation");
            bool keeps = (strategy != NULL && strcmp(strategy, "never") == 0) ||
                         (prop != NULL && strcmp(prop, "orphan") == 0);
            if (keeps && selects(cJSON_GetObjectItemCaseSensitive(r, "selector"), slot))
                return true;
        }
    }
    return false;
}

static enum transition_keep
keep_of(const cJSON *app, const struct transition_slot *slot)
{
    if (has_orphan_finalizer(app))
        return TRANSITION_KEPT_FINALIZER;
    return gc_keeps(app, slot) ? TRANSITION_KEPT_GC : TRANSITION_NOT_KEPT;
}

// ---- pairing -----------------------------------------------------------------------------------

static int
cmp_place(const void *x, const void *y)
{
    const struct transition_slot *a = *(const struct transition_slot *const *)x;
    const struct transition_slot *b = *(const struct transition_slot *const *)y;
    int d = strcmp(a->name, b->name);
    if (d == 0)
        d = strcmp(a->kind ? a->kind->kind : "", b->kind ? b->kind->kind : "");
    return d ? d : strcmp(a->object_name, b->object_name);
}

static int
cmp_table(const void *x, const void *y)
{
    const struct transition_slot *a = *(const struct transition_slot *const *)x;
    const struct transition_slot *b = *(const struct transition_slot *const *)y;
    return strcmp(a->table, b->table);
}

// For sorting: equal slots in component order, so that "the first of equals" below is the first
// in component order whatever qsort's algorithm (glibc's is not stable in every version).
static int
in_order(const void *x, const void *y)
{
    const struct transition_slot *a = *(const struct transition_slot *const *)x;
    const struct transition_slot *b = *(const struct transition_slot *const *)y;
    return (a > b) - (a < b);
}

static int
sort_place(const void *x, const void *y)
{
    int d = cmp_place(x, y);
    return d ? d : in_order(x, y);
}

static int
sort_table(const void *x, const void *y)
{
    int d = cmp_table(x, y);
    return d ? d : in_order(x, y);
}

// Slot pointers sorted by `cmp`, so each lookup is a binary search: an Application may hold
// thousands of components.
static const struct transition_slot **
sorted(const struct transition_slots *s, int (*cmp)(const void *, const void *))
{
    const struct transition_slot **v = xcalloc(s->count ? s->count : 1, sizeof *v);
    for (size_t i = 0; i < s->count; i++)
        v[i] = &s->items[i];
    qsort(v, s->count, sizeof *v, cmp);
    return v;
}

// The position in `v` of the first slot equal to `key`, or n when there is none.
static size_t
find_at(const struct transition_slot **v, size_t n, const struct transition_slot *key,
        int (*cmp)(const void *, const void *))
{
    const struct transition_slot **hit = bsearch(&key, v, n, sizeof *v, cmp);
    if (hit == NULL)
        return n;
    while (hit > v && cmp(&key, hit - 1) == 0)
        hit--; // the first of equals: the first in component order
    return (size_t)(hit - v);
}

static const struct transition_slot *
find(const struct transition_slot **v, size_t n, const struct transition_slot *key,
     int (*cmp)(const void *, const void *))
{
    size_t at = find_at(v, n, key, cmp);
    return at < n ? v[at] : NULL;
}

// A slot of object holding o's table under a place oldObject did not have, or NULL.
static const struct transition_slot *
moved_to(const struct transition_slot *o, const struct transition_slot **by_table, size_t n,
         const struct transition_slot **old_places, size_t old_n)
{
    for (size_t at = find_at(by_table, n, o, cmp_table); at < n; at++) {
        if (cmp_table(&o, &by_table[at]) != 0)
            break;
        if (find(old_places, old_n, by_table[at], cmp_place) == NULL)
            return by_table[at];
    }
    return NULL;
}

void
transition_compare(const cJSON *old_app, const struct transition_slots *old, const cJSON *new_app,
                   const struct transition_slots *now, struct transition_change *changes,
                   bool *paired)
{
    static const struct transition_slots none = {0};
    if (now == NULL)
        now = &none;
    const struct transition_slot **by_place = sorted(now, sort_place);
    const struct transition_slot **by_table = sorted(now, sort_table);
    const struct transition_slot **old_places = sorted(old, sort_place);
    if (paired != NULL)
        memset(paired, 0, now->count * sizeof *paired);
    for (size_t i = 0; i < old->count; i++) {
        const struct transition_slot *o = &old->items[i];
        struct transition_change *c = &changes[i];
        *c = (struct transition_change){o, NULL, 0, TRANSITION_NOT_KEPT, NULL};
        if (new_app == NULL) {
            c->kind = POLICY_DELETE;
            c->kept = keep_of(old_app, o);
            continue;
        }
        const struct transition_slot *n = find(by_place, now->count, o, cmp_place);
        if (n != NULL) {
            c->now = n;
            if (strcmp(o->type, n->type) != 0)
                c->kind = POLICY_REMOVE; // another kind of component renders another object
            else if (strcmp(o->table, n->table) != 0)
                c->kind = POLICY_RENAME;
        } else {
            // The same table under a component that oldObject did not have: a rename.
            n = moved_to(o, by_table, now->count, old_places, old->count);
            c->now = n;
            c->kind = n != NULL ? POLICY_RENAME : POLICY_REMOVE;
            if (n == NULL && o->object == NULL)
                c->new_type = type_now(new_app, o->name);
        }
        if (c->kind != 0) {
            enum transition_keep before = keep_of(old_app, o);
            c->kept = before != TRANSITION_NOT_KEPT && keep_of(new_app, o) != TRANSITION_NOT_KEPT
                          ? before
                          : TRANSITION_NOT_KEPT;
        }
        if (paired != NULL && c->now != NULL)
            paired[c->now - now->items] = true;
    }
    free(by_place);
    free(by_table);
    free(old_places);
}

const char *
transition_name(enum policy_transition t)
{
    for (int i = 0; i < POLICY_TRANSITION_COUNT; i++)
        if (t == (enum policy_transition)(1u << i))
            return POLICY_TRANSITION_NAMES[i];
    return NULL;
}

const char *
transition_keep_name(enum transition_keep k)
{
    switch (k) {
    case TRANSITION_KEPT_FINALIZER:
        return "the finalizer " ORPHAN_FINALIZER;
    case TRANSITION_KEPT_GC:
        return "a garbage-collect rule (strategy never or propagation orphan)";
    default:
        return NULL;
    }
}

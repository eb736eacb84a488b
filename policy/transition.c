// SPDX-License-Identifier: Apache-2.0
// Pairing the tables of oldObject with those of object, and the KubeVela keep rules.
#include "policy/transition.h"

#include <stdint.h>
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
        v = json_get(v, s->table_name_path[i]);
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
    const cJSON *props = json_get(comp, "properties");
    const cJSON *objects = json_get(props, "objects");
    const cJSON *o;
    cJSON_ArrayForEach(o, (cJSON_IsArray(objects) ? objects : NULL))
    {
        const struct kinds_row *row = kinds_find(s, json_str(o, "apiVersion"), json_str(o, "kind"));
        if (!cJSON_IsObject(o) || row == NULL)
            continue;
        const cJSON *t = kinds_get(o, row->table_name_from);
        const char *oname = json_str(json_get(o, "metadata"), "name");
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
    const cJSON *comps = json_get(json_get(app, "spec"), "components");
    const cJSON *comp;
    size_t i = 0;
    cJSON_ArrayForEach(comp, (cJSON_IsArray(comps) ? comps : NULL))
    {
        // The first read of each component since the parse: after 1000 components' trees (or
        // 2000, an UPDATE's) they come from memory, not from the caches.
        json_prefetch(comp->next);
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
    const cJSON *fin = json_get(json_get(app, "metadata"), "finalizers");
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
    const cJSON *comps = json_get(json_get(app, "spec"), "components");
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
    const cJSON *policies = json_get(json_get(app, "spec"), "policies");
    const cJSON *p;
    cJSON_ArrayForEach(p, (cJSON_IsArray(policies) ? policies : NULL))
    {
        const char *type = json_str(p, "type");
        if (type == NULL || strcmp(type, "garbage-collect") != 0)
            continue;
        const cJSON *rules = json_get(json_get(p, "properties"), "rules");
        const cJSON *r;
        cJSON_ArrayForEach(r, (cJSON_IsArray(rules) ? rules : NULL))
        {
            const char *strategy = json_str(r, "strategy"), *prop = json_str(r, "propagation");
            bool keeps = (strategy != NULL && strcmp(strategy, "never") == 0) ||
                         (prop != NULL && strcmp(prop, "orphan") == 0);
            if (keeps && selects(json_get(r, "selector"), slot))
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
//
// An Application may hold thousands of tables, so each pairing is a lookup in a hash index of
// object's slots (linear in the tables, where a sort and binary searches touched every name
// log n times). Slots are entered in component order and found in probe order, so among equal
// keys the first found is the first in component order.

static const char *
kind_name(const struct transition_slot *s)
{
    return s->kind ? s->kind->kind : "";
}

// A slot's place: its component, and for a carried object its kind and name.
static bool
same_place(const struct transition_slot *a, const struct transition_slot *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(kind_name(a), kind_name(b)) == 0 &&
           strcmp(a->object_name, b->object_name) == 0;
}

static bool
same_table(const struct transition_slot *a, const struct transition_slot *b)
{
    return strcmp(a->table, b->table) == 0;
}

// FNV-1a over s and its terminating NUL (so that "ab"+"c" and "a"+"bc" differ).
static uint64_t
hash_str(uint64_t h, const char *s)
{
    do {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3u;
    } while (*s++ != '\0');
    return h;
}

static uint64_t
hash_place(const struct transition_slot *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    return hash_str(hash_str(hash_str(h, s->name), kind_name(s)), s->object_name);
}

static uint64_t
hash_table(const struct transition_slot *s)
{
    return hash_str(0xcbf29ce484222325u, s->table);
}

// Open addressing with linear probing over slot positions + 1 (0: empty), at most half full.
struct slot_index {
    const struct transition_slots *slots;
    size_t *at;
    size_t mask;
    bool (*same)(const struct transition_slot *, const struct transition_slot *);
    uint64_t (*hash)(const struct transition_slot *);
};

static void
index_build(struct slot_index *x, const struct transition_slots *slots,
            bool (*same)(const struct transition_slot *, const struct transition_slot *),
            uint64_t (*hash)(const struct transition_slot *))
{
    size_t cap = 8;
    while (cap < 2 * slots->count)
        cap *= 2;
    *x = (struct slot_index){slots, xcalloc(cap, sizeof *x->at), cap - 1, same, hash};
    for (size_t i = 0; i < slots->count; i++) {
        size_t h = (size_t)hash(&slots->items[i]) & x->mask;
        while (x->at[h] != 0)
            h = (h + 1) & x->mask;
        x->at[h] = i + 1;
    }
}

// The next slot equal to `key` after probe position *pos (start with *pos = SIZE_MAX for the
// first), or NULL; equal slots come in component order.
static const struct transition_slot *
index_next(const struct slot_index *x, const struct transition_slot *key, size_t *pos)
{
    size_t h = *pos == SIZE_MAX ? (size_t)x->hash(key) & x->mask : (*pos + 1) & x->mask;
    for (; x->at[h] != 0; h = (h + 1) & x->mask) {
        const struct transition_slot *s = &x->slots->items[x->at[h] - 1];
        if (x->same(key, s)) {
            *pos = h;
            return s;
        }
    }
    return NULL;
}

static const struct transition_slot *
index_first(const struct slot_index *x, const struct transition_slot *key)
{
    size_t pos = SIZE_MAX;
    return index_next(x, key, &pos);
}

// The first slot of object holding o's table under a place oldObject did not have, or NULL.
static const struct transition_slot *
moved_to(const struct transition_slot *o, const struct slot_index *by_table,
         const struct slot_index *old_places)
{
    size_t pos = SIZE_MAX;
    for (const struct transition_slot *n; (n = index_next(by_table, o, &pos)) != NULL;)
        if (index_first(old_places, n) == NULL)
            return n;
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
    struct slot_index by_place, by_table, old_places;
    index_build(&by_place, now, same_place, hash_place);
    index_build(&by_table, now, same_table, hash_table);
    index_build(&old_places, old, same_place, hash_place);
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
        const struct transition_slot *n = index_first(&by_place, o);
        if (n != NULL) {
            c->now = n;
            if (strcmp(o->type, n->type) != 0)
                c->kind = POLICY_REMOVE; // another kind of component renders another object
            else if (strcmp(o->table, n->table) != 0)
                c->kind = POLICY_RENAME;
        } else {
            // The same table under a component that oldObject did not have: a rename.
            n = moved_to(o, &by_table, &old_places);
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
    free(by_place.at);
    free(by_table.at);
    free(old_places.at);
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

// SPDX-License-Identifier: Apache-2.0
// What an UPDATE or a DELETE does to the tables an Application holds: each table of oldObject is
// paired with its place in object (by component name, then by table name) and judged removed,
// renamed, deleted or kept. Pure: it reads two cJSON trees and the policy.
//
// Ownership: slots and changes point into the Applications and the policy they were computed
// from, which must outlive them; transition_slots_free releases the arrays only.
#ifndef TABLEGUARD_TRANSITION_H
#define TABLEGUARD_TRANSITION_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy/kinds.h"
#include "policy/policy.h"

// One table an Application holds: a component of a table-holding type (object NULL), or a guarded
// object that a k8s-objects component carries.
struct transition_slot {
    const cJSON *component;       // borrowed from the Application
    const cJSON *object;          // the guarded object, or NULL
    const struct kinds_row *kind; // the object's row, or NULL
    const char *name;             // component name, "" when absent
    const char *type;             // component type
    const char *object_name;      // the object's metadata.name, "" for a component
    const char *table;            // the table name
    size_t index;                 // the component's position in spec.components
};

struct transition_slots {
    struct transition_slot *items;
    size_t count;
};

// True when `obj` is a core.oam.dev Application object.
bool transition_is_application(const cJSON *obj);

// The table a component holds: the policy's tableNameFrom, else the component name; NULL when
// it has neither.
const char *transition_component_table(const struct policy_spec *s, const cJSON *comp);

// Collects the slots of `app`, in component order (none when it is not an Application).
void transition_slots(const struct policy_spec *s, const cJSON *app, struct transition_slots *out);
void transition_slots_free(struct transition_slots *slots);

// What keeps a table when its component goes or its Application is deleted.
enum transition_keep {
    TRANSITION_NOT_KEPT,
    TRANSITION_KEPT_FINALIZER, // the Application carries app.oam.dev/orphan-resource
    TRANSITION_KEPT_GC,        // a garbage-collect rule with strategy never or propagation orphan
};

struct transition_change {
    const struct transition_slot *old; // the table in oldObject
    const struct transition_slot *now; // its place in object, NULL when gone (or on DELETE)
    enum policy_transition kind;       // 0 when the table stays where it was
    enum transition_keep kept;         // set when a keep rule makes `kind` harmless
    const char *new_type; // a removal where object still has the component, as this type
};

// Judges every slot of `old` against `now` (NULL on DELETE: every table is deleted). `changes`
// holds old->count entries; `paired` (now->count entries, may be NULL) marks the slots of `now`
// that are some old table's place. A keep rule counts on DELETE when oldObject has it, on UPDATE
// when both oldObject and object have it (KubeVela garbage-collects with the rules it recorded).
void transition_compare(const cJSON *old_app, const struct transition_slots *old,
                        const cJSON *new_app, const struct transition_slots *now,
                        struct transition_change *changes, bool *paired);

// "remove", "rename", "delete" for one transition bit, NULL for 0.
const char *transition_name(enum policy_transition t);

// "the finalizer app.oam.dev/orphan-resource" or "a garbage-collect rule (strategy never or
// propagation orphan)", NULL when not kept.
const char *transition_keep_name(enum transition_keep k);

#endif

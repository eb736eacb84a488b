// SPDX-License-Identifier: Apache-2.0
// The kinds of rendered object that hold a table, and where each keeps the table's name and its
// protection fields: the two rows of the policy reference (kro DynamoDBTable, ACK Table), used
// wherever an Application carries such an object itself (a k8s-objects component) and to read
// what json-patch and json-merge-patch traits write into the object a component renders.
//
// A policy that lists `resources` replaces the two rows with its own (kinds_find).
//
// Ownership: the built-in rows are static; a policy's rows live as long as its spec.
#ifndef TABLEGUARD_KINDS_H
#define TABLEGUARD_KINDS_H

#include <cjson/cJSON.h>

#include "policy/policy.h"

struct kinds_row {
    const char *api_version;                               // e.g. "kro.run/v1alpha1"
    const char *kind;                                      // e.g. "DynamoDBTable"
    const char *const *table_name_from;                    // path under the object, NULL-terminated
    const char *const *setting_from[POLICY_SETTING_COUNT]; // likewise, per policy_setting
};

// The row for apiVersion/kind, or NULL when that kind holds no table. A policy that lists
// `resources` is read by its own rows (its spec owns them); one that lists none by the built-in
// rows. `s` may be NULL (built-in rows).
const struct kinds_row *kinds_find(const struct policy_spec *s, const char *api_version,
                                   const char *kind);

// Builds the rows of the policy's `resources`, in the same order (the paths are borrowed from
// them); the caller frees the array with free().
struct kinds_row *kinds_from_resources(const struct policy_resource *r, size_t count);

// The row of the object an aws-dynamodb-kro component renders (kro's DynamoDBTable).
const struct kinds_row *kinds_rendered(void);

// The item at `path` under `obj`, or NULL when a step is missing.
const cJSON *kinds_get(const cJSON *obj, const char *const *path);

#endif

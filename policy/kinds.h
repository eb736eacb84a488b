// SPDX-License-Identifier: Apache-2.0
// The kinds of rendered object that hold a table, and where each keeps the table's name and its
// protection fields: the two rows of the policy reference (kro DynamoDBTable, ACK Table), used
// wherever an Application carries such an object itself (a k8s-objects component) and to read
// what json-patch and json-merge-patch traits write into the object a component renders.
//
// Ownership: rows are static and never freed.
#ifndef TABLEGUARD_KINDS_H
#define TABLEGUARD_KINDS_H

#include <cjson/cJSON.h>

#include "policy/policy.h"

struct kinds_row {
    const char *api_version;                           // e.g. "kro.run/v1alpha1"
    const char *kind;                                  // e.g. "DynamoDBTable"
    const char *table_name_from[3];                    // path under the object, NULL-terminated
    const char *setting_from[POLICY_SETTING_COUNT][4]; // likewise, per policy_setting
};

// The row for apiVersion/kind, or NULL when that kind holds no table.
const struct kinds_row *kinds_find(const char *api_version, const char *kind);

// The row of the object an aws-dynamodb-kro component renders (kro's DynamoDBTable).
const struct kinds_row *kinds_rendered(void);

// The item at `path` under `obj`, or NULL when a step is missing.
const cJSON *kinds_get(const cJSON *obj, const char *const *path);

#endif

// SPDX-License-Identifier: Apache-2.0
// Evaluation of a guarded object: a kind a spec.resources row names (the ACK Table, the kro
// DynamoDBTable), judged by its own fields: mutate fills absent protection fields and adds ACK's
// retain annotation, validate applies the rules. Pure: no I/O.
//
// Ownership: the input is borrowed; results are freed with eval_result_free, as for an
// Application. Findings and resource_view point into the policy and the object, which must
// outlive them.
#ifndef TABLEGUARD_RESOURCE_H
#define TABLEGUARD_RESOURCE_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "policy/eval.h"
#include "policy/policy.h"

// ACK's per-resource deletion policy annotation; only the value "retain" counts as kept here
// (ACK deletes only on "delete", but a typo is not a policy anyone chose).
#define RESOURCE_RETAIN_ANNOTATION "services.k8s.aws/deletion-policy"

// What one guarded object says, read by its row's paths.
struct resource_view {
    const struct policy_resource *row;
    const char *name;  // metadata.name, "" when absent
    const char *table; // the table name; NULL when absent, empty or not a string
    // Effective settings: 1 on, 0 off (an absent field is off, as ACK reads it), -2 an error.
    int settings[POLICY_SETTING_COUNT];
    char why[POLICY_SETTING_COUNT][256]; // for -2: what is wrong, one line
    char table_why[256];                 // for table == NULL: what is wrong, one line
    bool retained;                       // the retain annotation is there with "retain"
};

// The row guarding `obj` (by its apiVersion and kind), or NULL.
const struct policy_resource *resource_row(const struct policy_spec *s, const cJSON *obj);

// Reads `obj` by `row`'s paths into `out`. Also usable on an object an Application carries.
void resource_read(const struct policy_resource *row, const cJSON *obj, struct resource_view *out);

// /mutate on a guarded object: fills absent protection fields with the table's defaults and adds
// the retain annotation where the table's profile says so. Fills `out` (zeroed first). Returns 0.
int resource_mutate(const struct policy *p, const struct eval_input *in, struct eval_result *out);

// /validate on a guarded object: the rules covering its table. Fills `out`. Returns 0.
int resource_validate(const struct policy *p, const struct eval_input *in, struct eval_result *out);

#endif

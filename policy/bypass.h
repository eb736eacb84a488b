// SPDX-License-Identifier: Apache-2.0
// What else in an Application can switch a table's protection off besides its protection trait:
// KubeVela override policies (properties or disable: true on the trait), and json-patch or
// json-merge-patch traits that write the rendered object's protection fields. Pure.
//
// Ownership: nothing is allocated; the result is a value.
#ifndef TABLEGUARD_BYPASS_H
#define TABLEGUARD_BYPASS_H

#include <cjson/cJSON.h>

#include "policy/policy.h"
#include "policy/transition.h"

#define BYPASS_NONE (-1)  // nothing here touches the setting (or only ever sets it true)
#define BYPASS_OFF 0      // something switches it off
#define BYPASS_ERROR (-2) // something touches it in a shape that cannot be judged

struct bypass_result {
    int value[POLICY_SETTING_COUNT];     // BYPASS_NONE, BYPASS_OFF or BYPASS_ERROR: the weakest
    char why[POLICY_SETTING_COUNT][320]; // for OFF and ERROR: what does it and what to change
};

// The weakest value the override policies of `app` and the patch traits of the component of
// `slot` (and those an override adds to it) give each setting. Guarded objects carried by a
// k8s-objects component are read directly and get BYPASS_NONE.
void bypass_weakest(const struct policy_spec *s, const cJSON *app,
                    const struct transition_slot *slot, struct bypass_result *out);

#endif

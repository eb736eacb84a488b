// SPDX-License-Identifier: Apache-2.0
// Reading a cJSON tree: the lookups every reader of reviews, manifests and suites makes.
#ifndef TABLEGUARD_JSONR_H
#define TABLEGUARD_JSONR_H

#include <cjson/cJSON.h>

// The string value of o's member key (case-sensitive), or NULL when o is not an object, has no
// such member, or the member is not a string.
const char *json_str(const cJSON *o, const char *key);

#endif

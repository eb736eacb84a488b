// SPDX-License-Identifier: Apache-2.0
#include "util/jsonr.h"

const char *
json_str(const cJSON *o, const char *key)
{
    // cJSON_GetStringValue's test, without a library call.
    const cJSON *v = json_get(o, key);
    return v != NULL && (v->type & 0xFF) == cJSON_String ? v->valuestring : NULL;
}

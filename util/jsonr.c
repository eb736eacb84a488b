// SPDX-License-Identifier: Apache-2.0
#include "util/jsonr.h"

const char *
json_str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

// SPDX-License-Identifier: Apache-2.0
// The guarded kinds as built-in knowledge: one table of rows, so a policy's own list can replace
// it.
#include "policy/kinds.h"

#include <string.h>

static const struct kinds_row ROWS[] = {
    {"kro.run/v1alpha1",
     "DynamoDBTable",
     {"spec", "tableName", NULL},
     {{"spec", "deletionProtectionEnabled", NULL}, {"spec", "pointInTimeRecoveryEnabled", NULL}}},
    {"dynamodb.services.k8s.aws/v1alpha1",
     "Table",
     {"spec", "tableName", NULL},
     {{"spec", "deletionProtectionEnabled", NULL},
      {"spec", "continuousBackups", "pointInTimeRecoveryEnabled", NULL}}},
};

const struct kinds_row *
kinds_find(const char *api_version, const char *kind)
{
    if (api_version == NULL || kind == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof ROWS / sizeof *ROWS; i++)
        if (strcmp(ROWS[i].api_version, api_version) == 0 && strcmp(ROWS[i].kind, kind) == 0)
            return &ROWS[i];
    return NULL;
}

const struct kinds_row *
kinds_rendered(void)
{
    return &ROWS[0];
}

const cJSON *
kinds_get(const cJSON *obj, const char *const *path)
{
    for (; *path != NULL && obj != NULL; path++)
        obj = cJSON_GetObjectItemCaseSensitive(obj, *path);
    return obj;
}

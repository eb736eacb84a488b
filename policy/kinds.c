// SPDX-License-Identifier: Apache-2.0
// The kinds of object that hold a table: the policy's own `resources` rows when it lists any,
// else the two built-in rows of the policy reference.
#include "policy/kinds.h"

#include <string.h>

#include "util/jsonr.h"
#include "util/xalloc.h"

static const char *const TABLE_NAME[] = {"spec", "tableName", NULL};
static const char *const DELETION_PROTECTION[] = {"spec", "deletionProtectionEnabled", NULL};

static const struct kinds_row ROWS[] = {
    {"kro.run/v1alpha1",
     "DynamoDBTable",
     TABLE_NAME,
     {DELETION_PROTECTION, (const char *const[]){"spec", "pointInTimeRecoveryEnabled", NULL}}},
    {"dynamodb.services.k8s.aws/v1alpha1",
     "Table",
     TABLE_NAME,
     {DELETION_PROTECTION,
      (const char *const[]){"spec", "continuousBackups", "pointInTimeRecoveryEnabled", NULL}}},
};

static const struct kinds_row *
find_row(const struct kinds_row *rows, size_t n, const char *api_version, const char *kind)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].api_version, api_version) == 0 && strcmp(rows[i].kind, kind) == 0)
            return &rows[i];
    return NULL;
}

const struct kinds_row *
kinds_find(const struct policy_spec *s, const char *api_version, const char *kind)
{
    if (api_version == NULL || kind == NULL)
        return NULL;
    if (s != NULL && s->resource_count > 0)
        return find_row(s->resource_rows, s->resource_count, api_version, kind);
    return find_row(ROWS, sizeof ROWS / sizeof *ROWS, api_version, kind);
}

// A policy path's segments are NULL-terminated, so they serve as a row's path as they are.
static const char *const *
row_path(const struct policy_path *p)
{
    return (const char *const *)p->segments;
}

struct kinds_row *
kinds_from_resources(const struct policy_resource *r, size_t count)
{
    struct kinds_row *rows = xcalloc(count ? count : 1, sizeof *rows);
    for (size_t i = 0; i < count; i++) {
        rows[i].api_version = r[i].api_version;
        rows[i].kind = r[i].kind;
        rows[i].table_name_from = row_path(&r[i].table_name);
        for (int k = 0; k < POLICY_SETTING_COUNT; k++)
            rows[i].setting_from[k] = row_path(&r[i].settings[k]);
    }
    return rows;
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
        obj = json_get(obj, *path);
    return obj;
}

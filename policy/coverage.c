// SPDX-License-Identifier: Apache-2.0
// Coverage of real manifests by a policy: rules, profiles and exceptions that match nothing,
// components that hold a table the policy never sees, and table-name paths that miss by case.
#include "policy/coverage.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"
#include "util/jsonr.h"

// A table found in the manifests: enough to match every glob a rule, profile or exception has.
struct found {
    const char *table, *ns, *app;
};

static bool
is_application(const cJSON *o)
{
    const char *api = json_str(o, "apiVersion"), *kind = json_str(o, "kind");
    return api != NULL && kind != NULL && strncmp(api, "core.oam.dev/", 13) == 0 &&
           strcmp(kind, "Application") == 0;
}

// A key of obj equal to `key` but for case, or NULL.
static const char *
other_case(const cJSON *obj, const char *key)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, (cJSON_IsObject(obj) ? obj : NULL))
    {
        if (it->string != NULL && strcmp(it->string, key) != 0 && strcasecmp(it->string, key) == 0)
            return it->string;
    }
    return NULL;
}

// The table name of a covered component, as eval reads it; warns when a step of the path is
// missing but present in another case.
static const char *
table_of(const struct policy_spec *s, const struct coverage_manifest *m, const cJSON *comp,
         struct diag *w, size_t *count)
{
    const cJSON *v = comp;
    for (size_t i = 0; i < s->table_name_depth && v != NULL; i++) {
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(v, s->table_name_path[i]);
        const char *near = next == NULL ? other_case(v, s->table_name_path[i]) : NULL;
        if (near != NULL) {
            diag_add(w, m->source, 0, 0,
                     "warning: component \"%s\": tableNameFrom \"%s\" has no \"%s\" here but "
                     "\"%s\" exists: the table name falls back to the component name",
                     json_str(comp, "name") ? json_str(comp, "name") : "", s->table_name_from,
                     s->table_name_path[i], near);
            ++*count;
        }
        v = next;
    }
    if (cJSON_IsString(v) && v->valuestring[0] != '\0')
        return v->valuestring;
    return json_str(comp, "name");
}

// Reports a component of a type the policy does not cover that still names a table.
static void
uncovered(const struct policy_spec *s, const struct coverage_manifest *m, const cJSON *comp,
          struct diag *w, size_t *count)
{
    const char *key = s->table_name_path[s->table_name_depth - 1];
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(comp, "properties");
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(props, key)))
        return;
    diag_add(w, m->source, 0, 0,
             "warning: component \"%s\" of type \"%s\" holds a %s but its type is not in "
             "components.types: tableguard never protects it",
             json_str(comp, "name") ? json_str(comp, "name") : "", json_str(comp, "type"), key);
    ++*count;
}

static void
collect(const struct policy_spec *s, const struct coverage_manifest *m, struct found **tables,
        size_t *nt, struct diag *w, size_t *count)
{
    if (!is_application(m->object))
        return;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m->object, "metadata");
    const char *ns = json_str(meta, "namespace"), *app = json_str(meta, "name");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(m->object, "spec");
    const cJSON *comps = cJSON_GetObjectItemCaseSensitive(spec, "components"), *comp;
    cJSON_ArrayForEach(comp, (cJSON_IsArray(comps) ? comps : NULL))
    {
        const char *type = json_str(comp, "type");
        if (!cJSON_IsObject(comp) || type == NULL)
            continue;
        if (!policy_globs_match(&s->component_types, type)) {
            uncovered(s, m, comp, w, count);
            continue;
        }
        const char *table = table_of(s, m, comp, w, count);
        if (table == NULL)
            continue;
        *tables = xrealloc(*tables, (*nt + 1) * sizeof **tables);
        (*tables)[(*nt)++] = (struct found){table, ns ? ns : "default", app ? app : ""};
    }
}

static bool
any_table(const struct found *t, size_t n, const struct policy_globs *tables,
          const struct policy_globs *namespaces, const struct policy_globs *apps)
{
    for (size_t i = 0; i < n; i++)
        if (policy_globs_match(tables, t[i].table) && policy_globs_match(namespaces, t[i].ns) &&
            (apps == NULL || policy_globs_match(apps, t[i].app)))
            return true;
    return false;
}

size_t
coverage_check(const struct policy_spec *s, const char *policy_file, const struct exceptions *x,
               const struct coverage_manifest *m, size_t n, struct diag *warnings)
{
    size_t count = 0, nt = 0;
    struct found *t = NULL;
    for (size_t i = 0; i < n; i++)
        collect(s, &m[i], &t, &nt, warnings, &count);
    for (size_t i = 0; i < s->rule_count; i++) {
        const struct policy_rule *r = &s->rules[i];
        if (!any_table(t, nt, &r->tables, &r->namespaces, NULL)) {
            diag_add(warnings, policy_file, 0, 0,
                     "warning: rule \"%s\" matches no table in the manifests", r->name);
            count++;
        }
    }
    for (size_t i = 0; i < s->profile_count; i++) {
        const struct policy_profile *p = &s->profiles[i];
        if (!any_table(t, nt, &p->tables, &p->namespaces, NULL)) {
            diag_add(warnings, policy_file, 0, 0,
                     "warning: profile \"%s\" matches no table in the manifests", p->name);
            count++;
        }
    }
    for (size_t i = 0; i < exceptions_count(x); i++) {
        const struct exception *e = exceptions_at(x, i);
        if (!any_table(t, nt, &e->tables, &e->namespaces, &e->applications)) {
            diag_add(warnings, exceptions_file(x), e->line, 0,
                     "warning: exception \"%s\" matches no table in the manifests", e->name);
            count++;
        }
    }
    free(t);
    return count;
}

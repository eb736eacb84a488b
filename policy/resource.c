// SPDX-License-Identifier: Apache-2.0
// Evaluation of a guarded object (an ACK Table, a kro DynamoDBTable): its fields read by the
// policy's paths, absent protection filled in by /mutate, the rules applied by /validate.
#include "policy/resource.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/patch.h"
#include "policy/transition.h"
#include "util/xalloc.h"
#include "util/jsonr.h"

const struct policy_resource *
resource_row(const struct policy_spec *s, const cJSON *obj)
{
    if (!cJSON_IsObject(obj) || s->resource_count == 0)
        return NULL;
    return policy_resource_for(s, json_str(obj, "apiVersion"), json_str(obj, "kind"));
}

// Walks `path` under `obj`. Returns the value, or NULL when it is absent; a step that is there
// but is not a mapping is written to `why` (and NULL returned) so it is not taken for absent.
static const cJSON *
walk(const struct policy_path *path, const cJSON *obj, char *why, size_t len)
{
    const cJSON *v = obj;
    why[0] = '\0';
    for (size_t i = 0; i < path->depth; i++) {
        if (i > 0 && cJSON_IsNull(v))
            return NULL; // a null mapping on the way holds nothing: the field is absent
        if (!cJSON_IsObject(v)) {
            // Names the step that is not a mapping: the path up to it.
            char got[80];
            eval_describe_value(v, got, sizeof got);
            size_t n = 0;
            for (size_t k = 0; k < i; k++)
                n += strlen(path->segments[k]) + 1;
            snprintf(why, len, "%.*s is %s, not a mapping", (int)(n ? n - 1 : 0), path->text, got);
            return NULL;
        }
        v = json_get(v, path->segments[i]);
        if (v == NULL)
            return NULL;
    }
    return v;
}

void
resource_read(const struct policy_resource *row, const cJSON *obj, struct resource_view *out)
{
    memset(out, 0, sizeof *out);
    out->row = row;
    const cJSON *meta = json_get(obj, "metadata");
    const char *name = json_str(meta, "name");
    out->name = name ? name : "";
    const cJSON *t = walk(&row->table_name, obj, out->table_why, sizeof out->table_why);
    if (cJSON_IsString(t) && t->valuestring[0] != '\0') {
        out->table = t->valuestring;
    } else if (out->table_why[0] == '\0') {
        char got[80];
        eval_describe_value(t, got, sizeof got);
        if (t == NULL)
            snprintf(out->table_why, sizeof out->table_why, "%.60s is absent",
                     row->table_name.text);
        else
            snprintf(out->table_why, sizeof out->table_why, "%.60s is %s, not a table name",
                     row->table_name.text, cJSON_IsString(t) ? "empty" : got);
    }
    for (int k = 0; k < POLICY_SETTING_COUNT; k++) {
        const cJSON *v = walk(&row->settings[k], obj, out->why[k], sizeof out->why[k]);
        if (out->why[k][0] != '\0') {
            out->settings[k] = -2;
        } else if (v == NULL) {
            out->settings[k] = 0; // ACK reads an absent field as false
        } else if (cJSON_IsBool(v)) {
            out->settings[k] = cJSON_IsTrue(v);
        } else {
            char got[80];
            eval_describe_value(v, got, sizeof got);
            out->settings[k] = -2;
            snprintf(out->why[k], sizeof out->why[k], "%.60s is %s, not a boolean",
                     row->settings[k].text, got);
        }
    }
    const cJSON *ann = json_get(meta, "annotations");
    const char *policy = json_str(ann, RESOURCE_RETAIN_ANNOTATION);
    out->retained = policy != NULL && strcmp(policy, "retain") == 0;
}

static bool
is_op(const struct eval_input *in, const char *op)
{
    return in->operation != NULL && strcmp(in->operation, op) == 0;
}

// Zeroes `out` and reads `subject` (the object, or on DELETE the oldObject it removes) into `v`;
// false (with out->skip saying why) when the rules must not judge it: not a guarded kind, being
// deleted already (finalizers must be able to run), or a request the policy excludes.
static bool
begin(const struct policy_spec *s, const struct eval_input *in, const cJSON *subject,
      struct eval_result *out, struct resource_view *v)
{
    memset(out, 0, sizeof *out);
    const struct policy_resource *row = resource_row(s, subject);
    const cJSON *meta = json_get(subject, "metadata");
    const cJSON *dts = json_get(meta, "deletionTimestamp");
    // As for an Application: not on a CREATE, whose deletionTimestamp the API server clears
    // after the mutating webhooks, so skipping it would store an unprotected table.
    if (row == NULL)
        out->skip = EVAL_NOT_APPLICATION;
    else if (dts != NULL && !cJSON_IsNull(dts) && (is_op(in, "UPDATE") || is_op(in, "DELETE")))
        out->skip = EVAL_DELETING;
    else if (eval_excluded(s, in))
        out->skip = EVAL_EXCLUDED;
    else if (in->unreadable != NULL)
        out->skip = EVAL_UNREADABLE;
    if (out->skip == EVAL_UNREADABLE)
        eval_deny_unreadable(row->kind, subject, in, out);
    if (out->skip != EVAL_EVALUATED)
        return false;
    resource_read(row, subject, v);
    return true;
}

// ---- mutate ----------------------------------------------------------------------------------

// What the table's profile asks of mutation.
struct wanted {
    const char *profile; // the profile's name, NULL when none matched
    bool defaults[POLICY_SETTING_COUNT];
    bool inject; // fill absent protection fields
    bool retain; // add the retain annotation
};

static void
wanted_for(const struct policy_spec *s, const char *table, const char *namespace, struct wanted *w)
{
    const struct policy_profile *pr = policy_profile_for(s, table, namespace);
    w->profile = pr ? pr->name : NULL;
    w->inject = pr == NULL || pr->inject;
    w->retain = pr != NULL && pr->retain;
    for (int k = 0; k < POLICY_SETTING_COUNT; k++)
        w->defaults[k] = pr && pr->defaults[k] >= 0 ? pr->defaults[k] == 1 : s->defaults[k];
}

// ACK reads the retain annotation; on any other kind it would mean nothing.
static bool
is_ack(const struct policy_resource *row)
{
    const char *slash = strchr(row->api_version, '/');
    size_t n = slash ? (size_t)(slash - row->api_version) : 0, k = strlen(".services.k8s.aws");
    return n > k && strncmp(row->api_version + n - k, ".services.k8s.aws", k) == 0;
}

// What resource_mutate has added so far, so that a later addition sees an earlier one (two fields
// may share a missing mapping: the second is added inside the first's instead of replacing it)
// without a copy of the whole object: each entry is a subtree added at segs[0..at] of the object.
struct additions {
    size_t n;
    struct {
        char *const *segs;
        size_t at;
        cJSON *sub; // owned
    } a[POLICY_SETTING_COUNT + 1];
};

// The subtree added at exactly segs[0..i], or NULL.
static cJSON *
added_at(const struct additions *ad, char *const *segs, size_t i)
{
    for (size_t k = 0; k < ad->n; k++) {
        bool same = ad->a[k].at == i;
        for (size_t j = 0; same && j <= i; j++)
            same = strcmp(ad->a[k].segs[j], segs[j]) == 0;
        if (same)
            return ad->a[k].sub;
    }
    return NULL;
}

// Adds `value` (owned) at `segs` of `object` as amended by `ad`, creating the mappings missing on
// the way, and the matching "add" to the patch: one operation at the first missing step. Nothing
// is added when the field is there (whatever its value: an explicit value is never overridden)
// or a step is not a mapping (validate reports that).
static void
fill(const cJSON *object, struct additions *ad, char *const *segs, size_t depth, cJSON *value,
     struct eval_result *out)
{
    struct patch_path path = {0};
    const cJSON *v = object;
    cJSON *owned = NULL; // v, once the walk is inside an earlier addition
    size_t i = 0;
    for (; i < depth; i++) {
        cJSON *mine = owned ? NULL : added_at(ad, segs, i);
        const cJSON *next = mine ? mine : cJSON_IsObject(v) ? json_get(v, segs[i]) : NULL;
        // A mapping on the way that is null is absent, as for an Application's traits; the "add"
        // replaces it. A null field at the end is a value someone wrote: validate judges it.
        if (next == NULL || (cJSON_IsNull(next) && i + 1 < depth))
            break;
        patch_path_push(&path, segs[i]);
        v = next;
        if (mine != NULL || owned != NULL)
            owned = (cJSON *)next; // a node of an addition, which is ours
    }
    if (i == depth || !cJSON_IsObject(v)) {
        cJSON_Delete(value);
        patch_path_free(&path);
        return;
    }
    cJSON *sub = value;
    for (size_t k = depth - 1; k > i; k--) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, segs[k], sub);
        sub = o;
    }
    patch_path_push(&path, segs[i]);
    if (out->patch == NULL)
        out->patch = cJSON_CreateArray();
    patch_add(out->patch, path.buf, cJSON_Duplicate(sub, 1));
    if (owned != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(owned, segs[i]);
        cJSON_AddItemToObject(owned, segs[i], sub);
    } else {
        ad->a[ad->n].segs = segs;
        ad->a[ad->n].at = i;
        ad->a[ad->n++].sub = sub;
    }
    patch_path_free(&path);
}

int
resource_mutate(const struct policy *p, const struct eval_input *in, struct eval_result *out)
{
    const struct policy_spec *s = policy_spec(p);
    struct resource_view v;
    if (!begin(s, in, in->object, out, &v))
        return 0;
    const struct policy_resource *row = v.row;
    if (v.table == NULL)
        return 0; // validate reports it: without a name no profile can be chosen
    struct wanted w;
    wanted_for(s, v.table, in->namespace, &w);
    // The row reports what the object holds once the patch is applied.
    char *component = xconcat(row->kind, "/", v.name, NULL);
    struct eval_table *t = eval_add_table(out, component, v.table);
    free(component);
    t->profile = w.profile;
    bool absent[POLICY_SETTING_COUNT], any = false;
    for (int k = 0; k < POLICY_SETTING_COUNT; k++) {
        absent[k] = w.inject && v.settings[k] == 0 &&
                    policy_path_get(&row->settings[k], in->object) == NULL;
        any |= absent[k];
        t->after[k] = absent[k] ? w.defaults[k] : v.settings[k];
    }
    bool annotate = w.retain && is_ack(row) && !v.retained;
    if (annotate) {
        const cJSON *meta = json_get(in->object, "metadata");
        const cJSON *ann = json_get(meta, "annotations");
        // An explicit deletion policy (even "delete") is the owner's choice: never overridden.
        annotate = json_get(ann, RESOURCE_RETAIN_ANNOTATION) == NULL;
    }
    if (!any && !annotate)
        return 0;
    struct additions ad = {0};
    for (int k = 0; k < POLICY_SETTING_COUNT; k++)
        if (absent[k])
            fill(in->object, &ad, row->settings[k].segments, row->settings[k].depth,
                 cJSON_CreateBool(w.defaults[k]), out);
    char *segs[] = {"metadata", "annotations", RESOURCE_RETAIN_ANNOTATION};
    if (annotate)
        fill(in->object, &ad, segs, 3, cJSON_CreateString("retain"), out);
    for (size_t k = 0; k < ad.n; k++)
        cJSON_Delete(ad.a[k].sub);
    return 0;
}

// ---- validate --------------------------------------------------------------------------------

// One guarded object being judged: where its findings and its row go.
struct judge {
    const struct policy_spec *s;
    const struct eval_input *in;
    const char *app;       // the Application that rendered it (its app.oam.dev/name label), or ""
    const char *component; // "Kind/name"
    struct eval_table *row;
    struct eval_result *out;
};

// The names a message quotes, escaped so a quote in one cannot end its quotes (as eval does).
enum { N_NS, N_NAME, N_TABLE, N_OLD, N_RULE, N_PATTERN, N_COUNT };
struct names {
    const char *v[N_COUNT];
    char *owned[N_COUNT];
};

static void
names_escape(struct names *n)
{
    for (int i = 0; i < N_COUNT; i++)
        n->v[i] = eval_escape(n->v[i] ? n->v[i] : "", &n->owned[i]);
}

static void
names_release(struct names *n)
{
    for (int i = 0; i < N_COUNT; i++)
        free(n->owned[i]);
}

static char *
setting_message(const struct resource_view *v, const struct names *n, const struct policy_rule *r,
                int k, bool absent)
{
    const char *want = r->require[k] ? "true" : "false";
    const char *field = v->row->settings[k].text;
    const char *state = v->settings[k] == -2 ? v->why[k]
                        : absent             ? "is absent, and ACK reads an absent field as false"
                        : v->settings[k]     ? "is true"
                                             : "is false";
    return xconcat(v->row->kind, " \"", n->v[N_NS], "/", n->v[N_NAME], "\" table \"", n->v[N_TABLE],
                   "\": rule \"", n->v[N_RULE], "\" (tables ", n->v[N_PATTERN], ") requires ",
                   POLICY_SETTING_NAMES[k], ": ", want, "; ", v->settings[k] == -2 ? "" : field,
                   v->settings[k] == -2 ? "" : " ", state, ": set ", field, ": ", want, NULL);
}

static char *
no_table_message(const struct resource_view *v, const struct names *n)
{
    return xconcat(v->row->kind, " \"", n->v[N_NS], "/", n->v[N_NAME], "\": ", v->table_why,
                   ", so no rule can tell which table it is; rule \"", n->v[N_RULE],
                   "\" covers this namespace: set ", v->row->table_name.text,
                   " to the table's name", NULL);
}

// Records a finding of rule r on `table` (message owned), with `sv` for a custom message.
static void
add(const struct judge *j, const struct policy_rule *r, const char *pattern, const char *table,
    const struct eval_subst *sv, char *builtin, int setting)
{
    char *m = builtin;
    if (r->message != NULL) {
        free(builtin);
        m = eval_expand(r->message, sv);
    }
    struct eval_finding f = {r, pattern, xstrdup(j->component), xstrdup(table), m, NULL};
    eval_add_finding(j->s, j->in, j->app, j->row, j->out, &f, setting);
}

static void
judge_rule(const struct judge *j, const struct resource_view *v, const struct policy_rule *r)
{
    bool any = false;
    for (int k = 0; k < POLICY_SETTING_COUNT; k++)
        any |= r->require[k] >= 0;
    if (!any || !policy_globs_match(&r->namespaces, j->in->namespace))
        return;
    const char *pattern = v->table ? eval_first_match(&r->tables, v->table) : "";
    if (pattern == NULL)
        return;
    struct eval_subst sv = {j->app,  j->in->namespace, j->component, v->table ? v->table : "",
                            r->name, pattern,          NULL};
    struct names n = {{j->in->namespace, v->name, v->table, NULL, r->name, pattern}, {0}};
    names_escape(&n);
    if (v->table == NULL) {
        add(j, r, "", "", &sv, r->message ? NULL : no_table_message(v, &n), -1);
    } else {
        for (int k = 0; k < POLICY_SETTING_COUNT; k++) {
            if (r->require[k] < 0 || v->settings[k] == r->require[k])
                continue;
            bool absent = policy_path_get(&v->row->settings[k], j->in->object) == NULL;
            add(j, r, pattern, v->table, &sv,
                r->message ? NULL : setting_message(v, &n, r, k, absent), k);
        }
    }
    names_release(&n);
}

// ---- transitions ------------------------------------------------------------------------------

// What a forbidden transition does to the data, and the way through; pieces, as for the rules.
static char *
forbid_message(const struct resource_view *v, const struct names *n, enum policy_transition t,
               bool annotation)
{
    const char *kind = v->row->kind, *table = n->v[N_OLD];
    bool ack = is_ack(v->row);
    char *what;
    if (t == POLICY_RENAME)
        what =
            xconcat(v->row->table_name.text, " changes from \"", table, "\" to \"", n->v[N_TABLE],
                    ack ? "\": ACK then manages another table by that name (creating it or "
                          "taking over an existing one) and leaves \""
                        : "\": kro renders a new Table named after it and deletes the old "
                          "one, and ACK deletes \"",
                    table, ack ? "\" unmanaged" : "\" with its data", " (set it back to \"", table,
                    "\")", NULL);
    else if (annotation)
        what = xconcat("the annotation " RESOURCE_RETAIN_ANNOTATION
                       ": retain is removed, so deleting the ",
                       kind,
                       " would make ACK delete the DynamoDB table with its data (keep the "
                       "annotation)",
                       NULL);
    else
        what = xconcat("deleting the ", kind,
                       ack ? " makes ACK delete the DynamoDB table with its data. To let it go, "
                             "first add the annotation " RESOURCE_RETAIN_ANNOTATION
                             ": retain in an earlier change (ACK then keeps the table)"
                           : " makes kro delete its Table, and ACK then deletes the DynamoDB "
                             "table with its data",
                       NULL);
    char *m = xconcat(kind, " \"", n->v[N_NS], "/", n->v[N_NAME], "\" table \"", table,
                      "\": rule \"", n->v[N_RULE], "\" (tables ", n->v[N_PATTERN], ") forbids ",
                      transition_name(t), "; ", what,
                      "; or ask for an approved exception to rule \"", n->v[N_RULE], "\"", NULL);
    free(what);
    return m;
}

// Every forbid rule naming `t` that covers the table (by the old name, or the new one for a
// rename) reports it; an unreadable table name is covered by every such rule of the namespace.
// `annotation`: the delete rule judges the retain annotation's removal, not a DELETE.
static void
forbid(const struct judge *j, enum policy_transition t, const struct resource_view *now,
       const struct resource_view *old, bool annotation)
{
    for (size_t i = 0; i < j->s->rule_count; i++) {
        const struct policy_rule *r = &j->s->rules[i];
        if ((r->forbid & t) == 0 || !policy_globs_match(&r->namespaces, j->in->namespace))
            continue;
        const char *pattern = old->table ? eval_first_match(&r->tables, old->table) : "";
        if (pattern == NULL && t == POLICY_RENAME)
            pattern = eval_first_match(&r->tables, now->table);
        if (pattern == NULL)
            continue;
        const char *table = old->table ? old->table : "";
        struct eval_subst sv = {j->app,  j->in->namespace, j->component,      table,
                                r->name, pattern,          transition_name(t)};
        struct names n = {
            {j->in->namespace, old->name, now ? now->table : NULL, table, r->name, pattern}, {0}};
        names_escape(&n);
        char *m = r->message           ? NULL
                  : old->table == NULL ? no_table_message(old, &n)
                                       : forbid_message(now ? now : old, &n, t, annotation);
        add(j, r, pattern, table, &sv, m, -1);
        names_release(&n);
    }
}

// Judges what the request does to the table: an UPDATE that changes the table name or drops
// the retain annotation, or a DELETE of an object ACK does not keep. Returns the transition.
static const char *
transitions(const struct judge *j, const struct resource_view *now, const struct resource_view *old)
{
    if (now == NULL) {
        if (is_ack(old->row) && old->retained)
            return NULL; // ACK keeps the table: not a delete
        forbid(j, POLICY_DELETE, NULL, old, false);
        return transition_name(POLICY_DELETE);
    }
    const char *t = NULL;
    if (old->table != NULL && now->table != NULL && strcmp(old->table, now->table) != 0) {
        forbid(j, POLICY_RENAME, now, old, false);
        t = transition_name(POLICY_RENAME);
    }
    if (is_ack(old->row) && old->retained && !now->retained)
        forbid(j, POLICY_DELETE, now, old, true);
    return t;
}

// The row of out->tables: the object's table and settings (none on DELETE), and oldObject's
// on an UPDATE of the same kind or a DELETE.
static struct eval_table *
table_row(const struct resource_view *now, const struct resource_view *old, const char *component,
          struct eval_result *out)
{
    // An object without a readable table name still holds some table: "" rather than NULL (gone).
    struct eval_table *t =
        eval_add_table(out, component, now ? (now->table ? now->table : "") : NULL);
    for (int k = 0; k < POLICY_SETTING_COUNT; k++)
        t->after[k] = now ? now->settings[k] : -1;
    if (old != NULL) {
        t->old_table = xstrdup(old->table ? old->table : "");
        for (int k = 0; k < POLICY_SETTING_COUNT; k++)
            t->before[k] = old->settings[k];
    }
    return t;
}

int
resource_validate(const struct policy *p, const struct eval_input *in, struct eval_result *out)
{
    const struct policy_spec *s = policy_spec(p);
    bool deleting = is_op(in, "DELETE");
    struct resource_view v, old;
    if (!begin(s, in, deleting ? in->old_object : in->object, out, &v))
        return 0;
    const struct resource_view *now = deleting ? NULL : &v, *before = deleting ? &v : NULL;
    // An UPDATE is judged against oldObject when it is the same kind.
    if (!deleting && is_op(in, "UPDATE") && resource_row(s, in->old_object) == v.row) {
        resource_read(v.row, in->old_object, &old);
        before = &old;
    }
    // The KubeVela labels name the Application that rendered the object, when one did.
    const cJSON *meta = json_get(deleting ? in->old_object : in->object, "metadata");
    const char *app = json_str(json_get(meta, "labels"), "app.oam.dev/name");
    char *component = xconcat(v.row->kind, "/", v.name, NULL);
    struct judge j = {s,  in, app ? app : "", component, table_row(now, before, component, out),
                      out};
    const char *table = now ? now->table : before->table;
    const struct policy_profile *pr = table ? policy_profile_for(s, table, in->namespace) : NULL;
    j.row->profile = pr ? pr->name : NULL;
    if (now != NULL)
        for (size_t r = 0; r < s->rule_count; r++)
            judge_rule(&j, now, &s->rules[r]);
    if (before != NULL)
        j.row->transition = transitions(&j, now, before);
    free(component);
    eval_conclude(p, out);
    return 0;
}

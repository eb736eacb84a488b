// SPDX-License-Identifier: Apache-2.0
// One admission request from body to answer, and the audit record of the decision.
#include "server/admit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/eval.h"
#include "policy/resource.h"
#include "util/xalloc.h"
#include "server/review.h"

// Version of the decision record's members; records without "schema" are version 1.
#define AUDIT_RECORD_SCHEMA 2

const char *
admit_webhook_name(enum admit_webhook w)
{
    return w == ADMIT_MUTATE ? "mutate" : "validate";
}

const char *
admit_decision_name(enum admit_decision d)
{
    static const char *const names[ADMIT_DECISION_COUNT] = {"allow", "patch", "deny", "invalid",
                                                            "error"};
    return d < ADMIT_DECISION_COUNT ? names[d] : names[ADMIT_ERROR];
}

// The record's members point into what the result keeps alive (the decoded request, the
// evaluation, the policy the caller holds), so building it copies no strings: a record is built
// on every request. Keys are literals.
static void
add_ref(cJSON *o, const char *key, const char *value)
{
    cJSON_AddItemToObjectCS(o, key, cJSON_CreateStringReference(value));
}

static cJSON *
add_object(cJSON *o, const char *key, cJSON *item)
{
    cJSON_AddItemToObjectCS(o, key, item);
    return item;
}

// One request's record is bounded, so that no request (95 000 failing components made an 83 MB
// record) can rotate the audit history away: past ADMIT_RECORD_RULES findings the rest are
// counted per rule ("rulesOmitted", "ruleCounts"), and a patch longer than ADMIT_RECORD_PATCH
// bytes is recorded by its size, operation count and SHA-256 instead of its text.
#define ADMIT_RECORD_RULES 1000
#define ADMIT_RECORD_PATCH (256 * 1024)
// Likewise the table rows: the first ADMIT_RECORD_TABLES are listed, the rest counted
// ("tablesOmitted").
#define ADMIT_RECORD_TABLES 1000

// Every finding's rule with its count, for a record that lists only the first findings.
static cJSON *
rule_counts(const struct policy *p, const struct eval_result *ev)
{
    const struct policy_spec *s = policy_spec(p);
    size_t *n = xcalloc(s->rule_count + 1, sizeof *n);
    for (size_t i = 0; i < ev->finding_count; i++) {
        size_t k = (size_t)(ev->findings[i].rule - s->rules);
        n[k < s->rule_count ? k : s->rule_count]++;
    }
    cJSON *o = cJSON_CreateObject();
    for (size_t k = 0; k < s->rule_count; k++)
        if (n[k] > 0)
            cJSON_AddItemToObject(o, s->rules[k].name, cJSON_CreateNumber((double)n[k]));
    if (n[s->rule_count] > 0) // findings of rules outside the policy's array (none today)
        cJSON_AddItemToObject(o, "", cJSON_CreateNumber((double)n[s->rule_count]));
    free(n);
    return o;
}

// The patch as the record holds it: its text, or past ADMIT_RECORD_PATCH bytes a summary (the
// text is then freed here).
static cJSON *
record_patch(char *patch_json, const struct eval_result *ev)
{
    if (patch_json == NULL)
        return cJSON_CreateArray();
    size_t len = strlen(patch_json);
    if (len <= ADMIT_RECORD_PATCH) {
        cJSON *raw = cJSON_CreateRaw("");
        cJSON_free(raw->valuestring);
        raw->valuestring = patch_json;
        return raw;
    }
    char digest[65];
    policy_digest(patch_json, len, digest);
    cJSON_free(patch_json);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "omitted", true);
    cJSON_AddNumberToObject(o, "operations", cJSON_GetArraySize(ev->patch));
    cJSON_AddNumberToObject(o, "bytes", (double)len);
    cJSON_AddStringToObject(o, "sha256", digest);
    return o;
}

// Strings of a row are referenced when the result that holds them outlives the record, copied
// otherwise (the evaluation an exclusion bypassed is freed at once).
static cJSON *
str_item(const char *s, bool copy)
{
    if (s == NULL)
        return cJSON_CreateNull();
    return copy ? cJSON_CreateString(s) : cJSON_CreateStringReference(s);
}

// A setting as the record shows it: true, false, null (no value: no table there, or no object
// before a CREATE) or "invalid" (not a boolean in the manifest).
static cJSON *
settings_item(const int v[POLICY_SETTING_COUNT])
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        cJSON *x = v[i] == 1    ? cJSON_CreateTrue()
                   : v[i] == 0  ? cJSON_CreateFalse()
                   : v[i] == -2 ? cJSON_CreateStringReference("invalid")
                                : cJSON_CreateNull();
        cJSON_AddItemToObjectCS(o, POLICY_SETTING_NAMES[i], x);
    }
    return o;
}

static bool
same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

// Whether a finding is about a row's table: the same component and table (the old name when the
// table is gone).
static bool
finding_on(const struct eval_finding *f, const struct eval_table *t)
{
    return same(f->component, t->component) && same(f->table, t->table ? t->table : t->old_table);
}

// "tables": every table the decision examined, with its profile, its settings before and after,
// the transition, the exception used and the rules it hit. Findings come in component order like
// the rows, so each row takes the run of findings at the cursor: linear in an Application of
// thousands of components. A finding out of that order is placed by a search afterwards.
static void
add_tables(cJSON *r, const struct eval_result *ev, bool copy)
{
    cJSON *tables = add_object(r, "tables", cJSON_CreateArray());
    size_t listed = ev->table_count < ADMIT_RECORD_TABLES ? ev->table_count : ADMIT_RECORD_TABLES;
    if (listed < ev->table_count)
        cJSON_AddNumberToObject(r, "tablesOmitted", (double)(ev->table_count - listed));
    cJSON **names = xcalloc(listed ? listed : 1, sizeof *names);
    size_t next = 0;
    for (size_t i = 0; i < listed; i++) {
        const struct eval_table *t = &ev->tables[i];
        cJSON *row = cJSON_CreateObject();
        cJSON_AddItemToObjectCS(row, "component", str_item(t->component, copy));
        cJSON_AddItemToObjectCS(row, "table", str_item(t->table, copy));
        if (t->old_table != NULL)
            cJSON_AddItemToObjectCS(row, "oldTable", str_item(t->old_table, copy));
        cJSON_AddItemToObjectCS(row, "profile", str_item(t->profile, copy));
        cJSON_AddItemToObjectCS(row, "before", settings_item(t->before));
        cJSON_AddItemToObjectCS(row, "after", settings_item(t->after));
        cJSON_AddItemToObjectCS(row, "transition", str_item(t->transition, copy));
        cJSON_AddItemToObjectCS(row, "exception", str_item(t->exception, copy));
        names[i] = add_object(row, "rules", cJSON_CreateArray());
        for (; next < ev->finding_count && finding_on(&ev->findings[next], t); next++)
            cJSON_AddItemToArray(names[i], str_item(ev->findings[next].rule->name, copy));
        cJSON_AddItemToArray(tables, row);
    }
    // Past the listed rows the remaining findings are the unlisted rows': no search then.
    for (size_t k = next; listed == ev->table_count && k < ev->finding_count; k++)
        for (size_t i = 0; i < listed; i++)
            if (finding_on(&ev->findings[k], &ev->tables[i])) {
                cJSON_AddItemToArray(names[i], str_item(ev->findings[k].rule->name, copy));
                break;
            }
    free(names);
}

// For an excluded request: which exclusion matched, and what evaluating it anyway finds, the
// tables (the record's "tables") and the rules the exclusion let through ("excluded.rules").
static void
add_excluded(cJSON *r, const struct policy *p, const struct eval_input *in)
{
    struct eval_exclusion x;
    cJSON *ex = add_object(r, "excluded", cJSON_CreateObject());
    if (eval_exclusion(p, in, &x) == 0) {
        add_ref(ex, "by", x.by);
        cJSON_AddItemToObjectCS(ex, "value", cJSON_CreateString(x.value));
        cJSON_AddItemToObjectCS(ex, "glob", cJSON_CreateString(x.glob));
    }
    struct eval_input all = *in;
    all.ignore_exclusions = true;
    struct eval_result bypassed;
    eval_validate(p, &all, &bypassed);
    cJSON *rules = add_object(ex, "rules", cJSON_CreateArray());
    for (size_t i = 0; i < bypassed.finding_count && i < ADMIT_RECORD_RULES; i++) {
        const struct eval_finding *f = &bypassed.findings[i];
        cJSON *hit = cJSON_CreateObject();
        cJSON_AddItemToObjectCS(hit, "name", cJSON_CreateString(f->rule->name));
        add_ref(hit, "action", policy_action_name(f->rule->action));
        cJSON_AddItemToObjectCS(hit, "component", str_item(f->component, true));
        cJSON_AddItemToObjectCS(hit, "table", str_item(f->table, true));
        cJSON_AddItemToArray(rules, hit);
    }
    add_tables(r, &bypassed, true);
    eval_result_free(&bypassed);
}

// Builds the audit record. The patch's text, printed once for the answer, moves into the record
// as raw JSON (NULL: no operations), so it is neither copied nor printed twice.
static cJSON *
build_record(const struct policy *p, enum admit_webhook w, const struct review_request *req,
             const struct eval_input *in, const struct eval_result *ev,
             enum admit_decision decision, char *patch_json)
{
    cJSON *r = cJSON_CreateObject();
    // The record's schema version (docs/audit.md): 2 added "tables" and "excluded".
    cJSON_AddItemToObjectCS(r, "schema", cJSON_CreateNumber(AUDIT_RECORD_SCHEMA));
    add_ref(r, "uid", req->uid);
    add_ref(r, "webhook", admit_webhook_name(w));
    add_ref(r, "operation", req->operation);
    cJSON_AddItemToObjectCS(r, "dryRun", cJSON_CreateBool(req->dry_run));
    cJSON *user = add_object(r, "user", cJSON_CreateObject());
    add_ref(user, "username", req->username);
    cJSON *groups = add_object(user, "groups", cJSON_CreateArray());
    for (size_t i = 0; i < req->group_count; i++)
        cJSON_AddItemToArray(groups, cJSON_CreateStringReference(req->groups[i]));
    const char *name = req->name;
    if (name[0] == '\0') {
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(req->object, "metadata");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(meta, "name");
        if (cJSON_IsString(n))
            name = n->valuestring;
    }
    cJSON *res = add_object(r, "resource", cJSON_CreateObject());
    add_ref(res, "group", req->group);
    add_ref(res, "version", req->version);
    add_ref(res, "resource", req->resource);
    add_ref(res, "namespace", req->namespace);
    add_ref(res, "name", name);
    add_ref(r, "decision", admit_decision_name(decision));
    cJSON_AddItemToObjectCS(r, "code", cJSON_CreateNumber(decision == ADMIT_DENY ? 403 : 200));
    if (ev->skip != EVAL_EVALUATED)
        add_ref(r, "skipped", eval_skip_name(ev->skip));
    cJSON *rules = add_object(r, "rules", cJSON_CreateArray());
    for (size_t i = 0; i < ev->finding_count && i < ADMIT_RECORD_RULES; i++) {
        const struct eval_finding *f = &ev->findings[i];
        cJSON *hit = cJSON_CreateObject();
        add_ref(hit, "name", f->rule->name);
        add_ref(hit, "action", policy_action_name(f->rule->action));
        add_ref(hit, "component", f->component);
        add_ref(hit, "table", f->table);
        add_ref(hit, "message", f->message);
        if (f->exception != NULL) {
            // Waived: who approved it, under which ticket, until when.
            cJSON *e = add_object(hit, "exception", cJSON_CreateObject());
            add_ref(e, "name", f->exception->name);
            add_ref(e, "ticket", f->exception->ticket);
            add_ref(e, "approvedBy", f->exception->approved_by);
            add_ref(e, "expires", f->exception->expires_text);
            if (f->exception->reason[0] != '\0')
                add_ref(e, "reason", f->exception->reason);
        }
        cJSON_AddItemToArray(rules, hit);
    }
    if (ev->finding_count > ADMIT_RECORD_RULES) {
        cJSON_AddNumberToObject(r, "rulesOmitted",
                                (double)(ev->finding_count - ADMIT_RECORD_RULES));
        add_object(r, "ruleCounts", rule_counts(p, ev));
    }
    if (ev->skip == EVAL_EXCLUDED)
        add_excluded(r, p, in);
    else
        add_tables(r, ev, false);
    add_object(r, "patch", record_patch(patch_json, ev));
    cJSON *pol = add_object(r, "policy", cJSON_CreateObject());
    add_ref(pol, "name", policy_spec(p)->name);
    add_ref(pol, "sha256", policy_sha256(p));
    return r;
}

// The distinct names of the rules that fired, comma separated, for auditAnnotations; NULL when
// none fired. Findings point into the policy's rule array, so a flag per rule finds repeats in
// one pass however many tables fail. A waived finding did not fire.
static char *
rule_names(const struct policy *p, const struct eval_result *ev)
{
    if (ev->finding_count == 0)
        return NULL;
    const struct policy_spec *s = policy_spec(p);
    bool *seen = xcalloc(s->rule_count, sizeof *seen);
    const struct policy_rule **fired = xmalloc(ev->finding_count * sizeof *fired);
    size_t n = 0, len = 0;
    for (size_t i = 0; i < ev->finding_count; i++) {
        if (ev->findings[i].exception != NULL)
            continue;
        const struct policy_rule *r = ev->findings[i].rule;
        size_t k = (size_t)(r - s->rules);
        if (k < s->rule_count) {
            if (seen[k])
                continue;
            seen[k] = true;
        }
        fired[n++] = r;
        len += strlen(r->name) + 1;
    }
    if (n == 0) {
        free(fired);
        free(seen);
        return NULL;
    }
    char *buf = xmalloc(len), *q = buf;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(fired[i]->name);
        memcpy(q, fired[i]->name, k);
        q[k] = i + 1 < n ? ',' : '\0';
        q += k + 1;
    }
    free(fired);
    free(seen);
    return buf;
}

// The distinct names of the exceptions that waived a finding, comma separated; NULL when none.
// A file holds few exceptions, and a request meets fewer: a scan of what is already listed is
// enough.
static char *
exception_names(const struct eval_result *ev)
{
    char *buf = NULL;
    size_t len = 0;
    for (size_t i = 0; i < ev->finding_count; i++) {
        const struct exception *e = ev->findings[i].exception;
        bool listed = false;
        for (size_t j = 0; e != NULL && j < i && !listed; j++)
            listed = ev->findings[j].exception == e;
        if (e == NULL || listed)
            continue;
        size_t k = strlen(e->name);
        buf = xrealloc(buf, len + k + 2);
        if (len > 0)
            buf[len++] = ',';
        memcpy(buf + len, e->name, k + 1);
        len += k;
    }
    return buf;
}

void
admit_handle(const struct policy *p, enum admit_webhook w, const char *body, size_t len,
             bool record, struct admit_result *res)
{
    admit_handle_with(p, NULL, 0, w, body, len, record, res);
}

void
admit_handle_with(const struct policy *p, const struct exceptions *x, long long now,
                  enum admit_webhook w, const char *body, size_t len, bool record,
                  struct admit_result *res)
{
    memset(res, 0, sizeof *res);
    struct review_request *rq = &res->req;
    char err[160];
    if (review_decode(body, len, rq, err, sizeof err) != 0) {
        res->status = 400;
        res->decision = ADMIT_INVALID;
        res->operation = rq->op;
        res->body = review_error_body(err, &res->body_len);
        return;
    }
    const struct review_request req = *rq;
    res->operation = req.op;
    struct eval_input in = {.object = req.object,
                            .namespace = req.namespace,
                            .username = req.username,
                            .groups = req.groups,
                            .group_count = req.group_count,
                            .old_object = req.old_object,
                            .operation = req.operation,
                            .unreadable = req.unreadable,
                            .now = now,
                            .exceptions = x};
    struct eval_result ev;
    // A DELETE is judged by /validate on the oldObject it removes: it has nothing to patch.
    // CONNECT is not an object write.
    bool writes = req.op == REVIEW_CREATE || req.op == REVIEW_UPDATE;
    bool deletes = req.op == REVIEW_DELETE && w == ADMIT_VALIDATE;
    // A guarded kind (spec.resources) is judged by its own fields (on DELETE, oldObject's); an
    // Application by its components; any other kind passes untouched and is counted.
    const struct policy_resource *row =
        resource_row(policy_spec(p), deletes ? req.old_object : req.object);
    if (!writes && !deletes) {
        memset(&ev, 0, sizeof ev);
        ev.skip = EVAL_NOT_APPLICATION;
    } else if (row != NULL) {
        (w == ADMIT_MUTATE ? resource_mutate : resource_validate)(p, &in, &ev);
    } else if (w == ADMIT_MUTATE) {
        eval_mutate(p, &in, &ev);
    } else {
        eval_validate(p, &in, &ev);
    }
    res->unguarded = (writes || deletes) && row == NULL && ev.skip == EVAL_NOT_APPLICATION;

    enum admit_decision decision = ev.denied ? ADMIT_DENY : ev.patch ? ADMIT_PATCH : ADMIT_ALLOW;
    char *rules = rule_names(p, &ev), *excepted = exception_names(&ev);
    char *ops = NULL;
    if (w == ADMIT_MUTATE && ev.patch != NULL && cJSON_GetArraySize(ev.patch) > 0)
        ops = cJSON_PrintUnformatted(ev.patch);
    // The API server keeps the first value of each annotation key of a request and warns at
    // every later call that sets another; it may call /mutate again on the patched object
    // (reinvocation) with a new uid, which then has nothing to patch. So the decision annotation
    // says only allow or deny, "patched" is set by the call that patched, and request-uid (new
    // at each call) by the calls no reinvocation follows: a patch, a denial, every /validate.
    bool patched = ops != NULL;
    struct review_response out = {
        .uid = req.uid,
        .allowed = !ev.denied,
        .patch = w == ADMIT_MUTATE ? ev.patch : NULL,
        .patch_json = ops,
        .message = ev.deny_message,
        .warnings = ev.warnings,
        .warning_count = ev.warning_count,
        .audit_decision = admit_decision_name(ev.denied ? ADMIT_DENY : ADMIT_ALLOW),
        .audit_rules = rules,
        .audit_request_uid = w == ADMIT_VALIDATE || patched || ev.denied ? req.uid : NULL,
        .audit_patched = patched,
        .audit_exceptions = excepted,
    };
    res->status = 200;
    res->decision = decision;
    res->body = review_encode(&out, &res->body_len);
    if (record)
        res->record = build_record(p, w, &req, &in, &ev, decision, ops);
    else
        cJSON_free(ops);
    free(rules);
    free(excepted);
    res->ev = ev; // the record's strings point into it
}

void
admit_fail(struct admit_result *res, int status, const char *message)
{
    free(res->body);
    res->status = status;
    res->body = review_error_body(message, &res->body_len);
    if (res->record != NULL) {
        cJSON_ReplaceItemInObjectCaseSensitive(res->record, "code", cJSON_CreateNumber(status));
        cJSON_AddStringToObject(res->record, "error", message);
    }
}

void
admit_result_free(struct admit_result *res)
{
    if (res == NULL)
        return;
    free(res->body);
    cJSON_Delete(res->record);
    eval_result_free(&res->ev);
    review_request_free(&res->req);
    memset(res, 0, sizeof *res);
}

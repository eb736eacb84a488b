// SPDX-License-Identifier: Apache-2.0
// The audit record of one admission decision, written as JSON text (docs/audit.md, schema 2).
#include "server/record.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonr.h"
#include "util/xalloc.h"

// The record's schema version (docs/audit.md): 2 added "tables" and "excluded". Records without
// "schema" are version 1.
#define RECORD_SCHEMA 2

// One request's record is bounded, so that no request (95 000 failing components made an 83 MB
// record) can rotate the audit history away: past RECORD_RULES findings the rest are counted per
// rule ("rulesOmitted", "ruleCounts"), and a patch longer than RECORD_PATCH bytes is recorded by
// its size, operation count and SHA-256 instead of its text. Likewise the table rows: the first
// RECORD_TABLES are listed, the rest counted ("tablesOmitted").
#define RECORD_RULES 1000
#define RECORD_PATCH (256 * 1024)
#define RECORD_TABLES 1000

// A member's key (with its leading comma, as literal text) and its string value: "" for NULL,
// or null for NULL.
#define STR(w, key, s) (jsonw_lit((w), key), jsonw_str((w), (s)))
#define STR_OR_NULL(w, key, s) (jsonw_lit((w), key), jsonw_str_or_null((w), (s)))

// Every finding's rule with its count, for a record that lists only the first findings.
static void
write_rule_counts(struct jsonw *w, const struct policy *p, const struct eval_result *ev)
{
    const struct policy_spec *s = policy_spec(p);
    size_t *n = xcalloc(s->rule_count + 1, sizeof *n);
    for (size_t i = 0; i < ev->finding_count; i++) {
        size_t k = (size_t)(ev->findings[i].rule - s->rules);
        n[k < s->rule_count ? k : s->rule_count]++;
    }
    char sep = '{';
    for (size_t k = 0; k <= s->rule_count; k++) {
        if (n[k] == 0)
            continue;
        jsonw_raw(w, &sep, 1);
        sep = ',';
        // Findings of rules outside the policy's array (none today) count under "".
        jsonw_str(w, k < s->rule_count ? s->rules[k].name : "");
        jsonw_lit(w, ":");
        jsonw_uint(w, n[k]);
    }
    if (sep == '{')
        jsonw_lit(w, "{");
    jsonw_lit(w, "}");
    free(n);
}

// The patch as the record holds it: its text, or past RECORD_PATCH bytes a summary.
static void
write_patch(struct jsonw *w, const char *patch_json, const struct eval_result *ev)
{
    if (patch_json == NULL) {
        jsonw_lit(w, "[]");
        return;
    }
    size_t len = strlen(patch_json);
    if (len <= RECORD_PATCH) {
        jsonw_raw(w, patch_json, len);
        return;
    }
    char digest[65];
    policy_digest(patch_json, len, digest);
    int ops = cJSON_GetArraySize(ev->patch);
    jsonw_lit(w, "{\"omitted\":true,\"operations\":");
    jsonw_uint(w, ops > 0 ? (uint64_t)ops : 0);
    jsonw_lit(w, ",\"bytes\":");
    jsonw_uint(w, len);
    STR(w, ",\"sha256\":", digest);
    jsonw_lit(w, "}");
}

// A setting as the record shows it: true, false, null (no value: no table there, or no object
// before a CREATE) or "invalid" (not a boolean in the manifest).
static void
write_settings(struct jsonw *w, const int v[POLICY_SETTING_COUNT])
{
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        jsonw_raw(w, i == 0 ? "{" : ",", 1);
        jsonw_str(w, POLICY_SETTING_NAMES[i]);
        if (v[i] == 1)
            jsonw_lit(w, ":true");
        else if (v[i] == 0)
            jsonw_lit(w, ":false");
        else if (v[i] == -2)
            jsonw_lit(w, ":\"invalid\"");
        else
            jsonw_lit(w, ":null");
    }
    jsonw_lit(w, "}");
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

// The findings a listed row names: a run at the cursor, then any placed by search (a chain
// through `link`, in finding order).
struct row_rules {
    size_t start, end;
    size_t first, last; // SIZE_MAX: none placed by search
};

// Which findings each listed row names. Findings come in component order like the rows, so each
// row takes the run of findings at the cursor: linear in an Application of thousands of
// components. A finding out of that order is placed by a search afterwards (only when every row
// is listed: past the listed rows the remaining findings are the unlisted rows').
static void
place_findings(const struct eval_result *ev, size_t listed, struct row_rules *rows, size_t *link)
{
    size_t next = 0;
    for (size_t i = 0; i < listed; i++) {
        rows[i].start = next;
        for (; next < ev->finding_count && finding_on(&ev->findings[next], &ev->tables[i]); next++)
            ;
        rows[i].end = next;
        rows[i].first = rows[i].last = SIZE_MAX;
    }
    for (size_t k = next; listed == ev->table_count && k < ev->finding_count; k++)
        for (size_t i = 0; i < listed; i++)
            if (finding_on(&ev->findings[k], &ev->tables[i])) {
                link[k] = SIZE_MAX;
                if (rows[i].first == SIZE_MAX)
                    rows[i].first = k;
                else
                    link[rows[i].last] = k;
                rows[i].last = k;
                break;
            }
}

static void
write_row(struct jsonw *w, const struct eval_result *ev, const struct eval_table *t,
          const struct row_rules *rr, const size_t *link)
{
    STR_OR_NULL(w, "{\"component\":", t->component);
    STR_OR_NULL(w, ",\"table\":", t->table);
    if (t->old_table != NULL) {
        STR(w, ",\"oldTable\":", t->old_table);
    }
    STR_OR_NULL(w, ",\"profile\":", t->profile);
    jsonw_lit(w, ",\"before\":");
    write_settings(w, t->before);
    jsonw_lit(w, ",\"after\":");
    write_settings(w, t->after);
    STR_OR_NULL(w, ",\"transition\":", t->transition);
    STR_OR_NULL(w, ",\"exception\":", t->exception);
    jsonw_lit(w, ",\"rules\":[");
    bool first = true;
    for (size_t k = rr->start; k < rr->end; k++, first = false) {
        if (!first)
            jsonw_lit(w, ",");
        jsonw_str(w, ev->findings[k].rule->name);
    }
    for (size_t k = rr->first; k != SIZE_MAX; k = link[k], first = false) {
        if (!first)
            jsonw_lit(w, ",");
        jsonw_str(w, ev->findings[k].rule->name);
    }
    jsonw_lit(w, "]}");
}

// "tables": every table the decision examined, with its profile, its settings before and after,
// the transition, the exception used and the rules it hit; then "tablesOmitted" past the listed.
static void
write_tables(struct jsonw *w, const struct eval_result *ev)
{
    size_t listed = ev->table_count < RECORD_TABLES ? ev->table_count : RECORD_TABLES;
    struct row_rules *rows = xmalloc((listed ? listed : 1) * sizeof *rows);
    size_t *link = xmalloc((ev->finding_count ? ev->finding_count : 1) * sizeof *link);
    place_findings(ev, listed, rows, link);
    jsonw_lit(w, ",\"tables\":[");
    for (size_t i = 0; i < listed; i++) {
        if (i > 0)
            jsonw_lit(w, ",");
        write_row(w, ev, &ev->tables[i], &rows[i], link);
    }
    jsonw_lit(w, "]");
    if (listed < ev->table_count) {
        jsonw_lit(w, ",\"tablesOmitted\":");
        jsonw_uint(w, ev->table_count - listed);
    }
    free(link);
    free(rows);
}

// For an excluded request: which exclusion matched, and what evaluating it anyway finds, the
// tables (the record's "tables") and the rules the exclusion let through ("excluded.rules").
static void
write_excluded(struct jsonw *w, const struct policy *p, const struct eval_input *in)
{
    struct eval_exclusion x;
    jsonw_lit(w, ",\"excluded\":{");
    bool any = false;
    if (eval_exclusion(p, in, &x) == 0) {
        STR(w, "\"by\":", x.by);
        if (x.value != NULL) {
            STR(w, ",\"value\":", x.value);
        }
        if (x.glob != NULL) {
            STR(w, ",\"glob\":", x.glob);
        }
        any = true;
    }
    struct eval_input all = *in;
    all.ignore_exclusions = true;
    struct eval_result bypassed;
    eval_validate(p, &all, &bypassed);
    if (any)
        jsonw_lit(w, ",");
    jsonw_lit(w, "\"rules\":[");
    for (size_t i = 0; i < bypassed.finding_count && i < RECORD_RULES; i++) {
        const struct eval_finding *f = &bypassed.findings[i];
        if (i > 0)
            jsonw_lit(w, ",");
        STR(w, "{\"name\":", f->rule->name);
        STR(w, ",\"action\":", policy_action_name(f->rule->action));
        STR_OR_NULL(w, ",\"component\":", f->component);
        STR_OR_NULL(w, ",\"table\":", f->table);
        jsonw_lit(w, "}");
    }
    jsonw_lit(w, "]}");
    write_tables(w, &bypassed);
    eval_result_free(&bypassed);
}

// One rule hit of "rules", with the exception that waived it: who approved it, under which
// ticket, until when.
static void
write_hit(struct jsonw *w, const struct eval_finding *f)
{
    STR(w, "{\"name\":", f->rule->name);
    STR(w, ",\"action\":", policy_action_name(f->rule->action));
    STR(w, ",\"component\":", f->component);
    STR(w, ",\"table\":", f->table);
    STR(w, ",\"message\":", f->message);
    if (f->exception != NULL) {
        STR(w, ",\"exception\":{\"name\":", f->exception->name);
        STR(w, ",\"ticket\":", f->exception->ticket);
        STR(w, ",\"approvedBy\":", f->exception->approved_by);
        STR(w, ",\"expires\":", f->exception->expires_text);
        if (f->exception->reason[0] != '\0') {
            STR(w, ",\"reason\":", f->exception->reason);
        }
        jsonw_lit(w, "}");
    }
    jsonw_lit(w, "}");
}

// "user" and "resource": who asked for what. A request without a name (a CREATE with
// generateName) is named from the object's metadata.
static void
write_who(struct jsonw *w, const struct review_request *req)
{
    STR(w, ",\"user\":{\"username\":", req->username);
    jsonw_lit(w, ",\"groups\":[");
    for (size_t i = 0; i < req->group_count; i++) {
        if (i > 0)
            jsonw_lit(w, ",");
        jsonw_str(w, req->groups[i]);
    }
    const char *name = req->name;
    if (name[0] == '\0') {
        const char *n = json_str(json_get(req->object, "metadata"), "name");
        if (n != NULL)
            name = n;
    }
    STR(w, "]},\"resource\":{\"group\":", req->group);
    STR(w, ",\"version\":", req->version);
    STR(w, ",\"resource\":", req->resource);
    STR(w, ",\"namespace\":", req->namespace);
    STR(w, ",\"name\":", name);
    jsonw_lit(w, "}");
}

void
record_write(struct jsonw *w, const struct policy *p, const struct record_decision *d,
             size_t *code_at)
{
    const struct review_request *req = d->req;
    const struct eval_result *ev = d->ev;
    jsonw_lit(w, "{\"schema\":");
    jsonw_uint(w, RECORD_SCHEMA);
    STR(w, ",\"uid\":", req->uid);
    STR(w, ",\"webhook\":", d->webhook);
    STR(w, ",\"operation\":", req->operation);
    jsonw_lit(w, ",\"dryRun\":");
    jsonw_bool(w, req->dry_run);
    write_who(w, req);
    STR(w, ",\"decision\":", d->decision);
    jsonw_lit(w, ",\"code\":");
    *code_at = w->len;
    jsonw_uint(w, (uint64_t)d->code);
    if (ev->skip != EVAL_EVALUATED) {
        STR(w, ",\"skipped\":", eval_skip_name(ev->skip));
    }
    jsonw_lit(w, ",\"rules\":[");
    for (size_t i = 0; i < ev->finding_count && i < RECORD_RULES; i++) {
        if (i > 0)
            jsonw_lit(w, ",");
        write_hit(w, &ev->findings[i]);
    }
    jsonw_lit(w, "]");
    if (ev->finding_count > RECORD_RULES) {
        jsonw_lit(w, ",\"rulesOmitted\":");
        jsonw_uint(w, ev->finding_count - RECORD_RULES);
        jsonw_lit(w, ",\"ruleCounts\":");
        write_rule_counts(w, p, ev);
    }
    if (ev->skip == EVAL_EXCLUDED)
        write_excluded(w, p, d->in);
    else
        write_tables(w, ev);
    if (d->not_held_reason != NULL) {
        jsonw_lit(w, ",\"notHeld\":{\"bytes\":");
        jsonw_uint(w, d->not_held_bytes);
        STR(w, ",\"reason\":", d->not_held_reason);
        jsonw_lit(w, "}");
    }
    jsonw_lit(w, ",\"patch\":");
    write_patch(w, d->patch_json, ev);
    STR(w, ",\"policy\":{\"name\":", policy_spec(p)->name);
    STR(w, ",\"sha256\":", policy_sha256(p));
    jsonw_lit(w, "}}");
}

void
record_mark_error(struct jsonw *w, size_t code_at, int status, const char *message)
{
    size_t end = code_at;
    while (end < w->len && w->buf[end] >= '0' && w->buf[end] <= '9')
        end++;
    struct jsonw out = {0};
    jsonw_reserve(&out, w->len + strlen(message) + 32);
    jsonw_raw(&out, w->buf, code_at);
    jsonw_uint(&out, status > 0 ? (uint64_t)status : 0);
    jsonw_raw(&out, w->buf + end, w->len - end - 1); // without the closing brace
    jsonw_lit(&out, ",\"error\":");
    jsonw_str(&out, message);
    jsonw_lit(&out, "}");
    jsonw_free(w);
    *w = out;
}

// SPDX-License-Identifier: Apache-2.0
// One admission request from body to answer, and the audit record of the decision.
#include "server/admit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/eval.h"
#include "policy/resource.h"
#include "util/xalloc.h"
#include "server/record.h"
#include "server/review.h"

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

// The decision's audit record, as text in res (the patch as printed for the answer, or NULL).
static void
add_record(struct admit_result *res, const struct policy *p, enum admit_webhook w,
           const struct eval_input *in, const struct eval_result *ev, const char *ops,
           const struct admit_unheld *u)
{
    struct record_decision d = {.webhook = admit_webhook_name(w),
                                .decision = admit_decision_name(res->decision),
                                .code = res->decision == ADMIT_DENY ? 403 : 200,
                                .req = &res->req,
                                .in = in,
                                .ev = ev,
                                .patch_json = ops,
                                .not_held_bytes = u != NULL ? u->bytes : 0,
                                .not_held_reason = u != NULL ? u->why : NULL};
    record_write(&res->record, p, &d, &res->record_code_at);
}

void
admit_handle(const struct policy *p, enum admit_webhook w, const char *body, size_t len,
             bool record, struct admit_result *res)
{
    admit_handle_with(p, NULL, 0, w, body, len, record, res);
}

// A review answered from a stand-in (u != NULL) cannot be judged: it is unreadable, as an
// escaped NUL makes one, and says so when it is let through.
static void
unheld_begin(const struct admit_unheld *u, struct review_request *rq)
{
    free(rq->unreadable);
    rq->unreadable = xasprintf("its body of %zu bytes could not be held: %s", u->bytes, u->why);
}

static void
unheld_end(const struct admit_unheld *u, struct eval_result *ev)
{
    if (ev->denied)
        return;
    ev->warnings = xgrow(ev->warnings, ev->warning_count, sizeof *ev->warnings);
    ev->warnings[ev->warning_count++] = xasprintf(
        "tableguard could not hold this review's %zu-byte body: allowed unjudged", u->bytes);
}

// Decode, evaluate, encode and record one review, in that order; for a stand-in (u != NULL)
// with the review marked unreadable before evaluation and a warning on an allowed answer.
static void
handle(const struct policy *p, const struct exceptions *x, long long now, enum admit_webhook w,
       const char *body, size_t len, const struct admit_unheld *u, bool record,
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
    if (u != NULL)
        unheld_begin(u, rq);
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
    if (u != NULL)
        unheld_end(u, &ev);

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
        add_record(res, p, w, &in, &ev, ops, u);
    cJSON_free(ops);
    free(rules);
    free(excepted);
    res->ev = ev;
}

void
admit_handle_with(const struct policy *p, const struct exceptions *x, long long now,
                  enum admit_webhook w, const char *body, size_t len, bool record,
                  struct admit_result *res)
{
    handle(p, x, now, w, body, len, NULL, record, res);
}

void
admit_handle_unheld(const struct policy *p, const struct exceptions *x, long long now,
                    enum admit_webhook w, const char *stand_in, size_t len,
                    const struct admit_unheld *u, bool record, struct admit_result *res)
{
    handle(p, x, now, w, stand_in, len, u, record, res);
}

void
admit_fail(struct admit_result *res, int status, const char *message)
{
    free(res->body);
    res->status = status;
    res->body = review_error_body(message, &res->body_len);
    if (res->record.buf != NULL)
        record_mark_error(&res->record, res->record_code_at, status, message);
}

void
admit_result_free(struct admit_result *res)
{
    if (res == NULL)
        return;
    free(res->body);
    jsonw_free(&res->record);
    eval_result_free(&res->ev);
    review_request_free(&res->req);
    memset(res, 0, sizeof *res);
}

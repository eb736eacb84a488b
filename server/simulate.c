// SPDX-License-Identifier: Apache-2.0
// The API server, simulated offline: a manifest becomes AdmissionReview bodies answered by
// admit_handle, the mutating answer's patch is decoded and applied as the API server applies it,
// and the mutated object goes to the validating webhook.
#include "server/simulate.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/patch.h"
#include "util/xalloc.h"
#include "util/jsonr.h"
#include "server/admit.h"

void
simulate_outcome_free(struct simulate_outcome *o)
{
    cJSON_Delete(o->patch);
    cJSON_Delete(o->mutated);
    cJSON_Delete(o->rules);
    cJSON_Delete(o->warnings);
    free(o->message);
    free(o->skipped);
    free(o->error);
    memset(o, 0, sizeof *o);
}

const char *
simulate_namespace(const cJSON *manifest, const struct simulate_request *o)
{
    const char *ns = json_str(cJSON_GetObjectItemCaseSensitive(manifest, "metadata"), "namespace");
    return o->namespace ? o->namespace : ns ? ns : "default";
}

// An AdmissionReview v1 request as kube-apiserver serialises it; on DELETE `object` is NULL and
// the request names what `old` is.
static char *
review_body(const cJSON *object, const cJSON *old, const struct simulate_request *o, unsigned seq)
{
    const cJSON *subject = object ? object : old;
    const char *api = json_str(subject, "apiVersion"), *kind = json_str(subject, "kind");
    api = api ? api : "";
    kind = kind ? kind : "";
    const char *slash = strchr(api, '/');
    char *group = slash ? xstrndup(api, (size_t)(slash - api)) : xstrdup("");
    char *resource = xasprintf("%ss", kind);
    for (char *p = resource; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    const char *name = json_str(cJSON_GetObjectItemCaseSensitive(subject, "metadata"), "name");
    char uid[40];
    snprintf(uid, sizeof uid, "00000000-0000-4000-8000-%012u", seq);

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "kind", "AdmissionReview");
    cJSON_AddStringToObject(root, "apiVersion", "admission.k8s.io/v1");
    cJSON *rq = cJSON_AddObjectToObject(root, "request");
    cJSON_AddStringToObject(rq, "uid", uid);
    cJSON *gvk = cJSON_AddObjectToObject(rq, "kind");
    cJSON_AddStringToObject(gvk, "group", group);
    cJSON_AddStringToObject(gvk, "version", slash ? slash + 1 : api);
    cJSON_AddStringToObject(gvk, "kind", kind);
    cJSON *gvr = cJSON_AddObjectToObject(rq, "resource");
    cJSON_AddStringToObject(gvr, "group", group);
    cJSON_AddStringToObject(gvr, "version", slash ? slash + 1 : api);
    cJSON_AddStringToObject(gvr, "resource", resource);
    cJSON_AddItemToObject(rq, "requestKind", cJSON_Duplicate(gvk, 1));
    cJSON_AddItemToObject(rq, "requestResource", cJSON_Duplicate(gvr, 1));
    cJSON_AddStringToObject(rq, "name", name ? name : "");
    cJSON_AddStringToObject(rq, "namespace", simulate_namespace(subject, o));
    cJSON_AddStringToObject(rq, "operation", o->operation);
    cJSON *user = cJSON_AddObjectToObject(rq, "userInfo");
    cJSON_AddStringToObject(user, "username", o->user);
    cJSON_AddItemToObject(user, "groups", cJSON_Duplicate(o->groups, 1));
    cJSON_AddItemToObject(rq, "object", object ? cJSON_Duplicate(object, 1) : cJSON_CreateNull());
    cJSON_AddItemToObject(rq, "oldObject", old ? cJSON_Duplicate(old, 1) : cJSON_CreateNull());
    cJSON_AddBoolToObject(rq, "dryRun", true);
    cJSON *opts = cJSON_AddObjectToObject(rq, "options");
    cJSON_AddStringToObject(opts, "kind",
                            strcmp(o->operation, "UPDATE") == 0   ? "UpdateOptions"
                            : strcmp(o->operation, "DELETE") == 0 ? "DeleteOptions"
                                                                  : "CreateOptions");
    cJSON_AddStringToObject(opts, "apiVersion", "meta.k8s.io/v1");
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(group);
    free(resource);
    return body;
}

// Calls one webhook; returns the parsed "response" member's owner (the whole review) or NULL
// with o->error set. *record receives the audit record (owned by the caller).
static cJSON *
call_webhook(const struct policy *p, enum admit_webhook w, const cJSON *object, const cJSON *old,
             const struct simulate_request *ro, unsigned seq, cJSON **record,
             struct simulate_outcome *o)
{
    char *body = review_body(object, old, ro, seq);
    struct admit_result res;
    admit_handle_with(p, ro->exceptions, ro->now, w, body, strlen(body), true, &res);
    free(body);
    cJSON *answer = res.status == 200 ? cJSON_ParseWithLength(res.body, res.body_len) : NULL;
    if (answer == NULL) {
        o->error = xasprintf("/%s answered HTTP %d: %.*s", admit_webhook_name(w), res.status,
                             (int)res.body_len, res.body ? res.body : "");
    } else {
        *record = cJSON_ParseWithLength(res.record.buf, res.record.len);
    }
    admit_result_free(&res);
    return answer;
}

// The patch as the API server reads it: standard base64 of a JSON array of operations.
static cJSON *
decode_patch(const char *b64, char *err, size_t errlen)
{
    size_t n = strlen(b64);
    if (n % 4 != 0) {
        snprintf(err, errlen, "the patch is not padded base64");
        return NULL;
    }
    unsigned char *raw = xmalloc(n / 4 * 3 + 1);
    int got = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    cJSON *ops = NULL;
    if (got < 0) {
        snprintf(err, errlen, "the patch is not base64");
    } else {
        // EVP_DecodeBlock counts the padding's zero bytes.
        size_t len = (size_t)got - (n >= 1 && b64[n - 1] == '=') - (n >= 2 && b64[n - 2] == '=');
        ops = cJSON_ParseWithLength((const char *)raw, len);
        if (!cJSON_IsArray(ops)) {
            snprintf(err, errlen, "the patch is not a JSON array");
            cJSON_Delete(ops);
            ops = NULL;
        }
    }
    free(raw);
    return ops;
}

static void
collect_warnings(const cJSON *response, cJSON *into)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(response, "warnings"))
    {
        if (cJSON_IsString(w))
            cJSON_AddItemToArray(into, cJSON_CreateString(w->valuestring));
    }
}

static void
take_denial(const cJSON *response, struct simulate_outcome *o)
{
    o->allowed = false;
    const char *msg = json_str(cJSON_GetObjectItemCaseSensitive(response, "status"), "message");
    free(o->message);
    o->message = xstrdup(msg ? msg : "denied");
}

// Runs the mutating webhook, applies its patch, then runs the validating webhook on the result.
// Returns 0 when both answered (o->allowed says the decision), -1 with o->error otherwise.
int
simulate_run(const struct policy *p, const cJSON *manifest, const struct simulate_request *ro,
             unsigned seq, struct simulate_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->allowed = true;
    o->patch = cJSON_CreateArray();
    o->warnings = cJSON_CreateArray();
    o->mutated = cJSON_Duplicate(manifest, 1);
    bool deleting = strcmp(ro->operation, "DELETE") == 0;
    const cJSON *old = deleting                               ? manifest
                       : strcmp(ro->operation, "UPDATE") != 0 ? NULL
                       : ro->old != NULL                      ? ro->old
                                                              : manifest;
    cJSON *record = NULL;
    cJSON *answer = NULL;
    if (deleting)
        goto validate; // nothing is mutated on its way out
    answer = call_webhook(p, ADMIT_MUTATE, manifest, old, ro, seq, &record, o);
    if (answer == NULL)
        return -1;
    cJSON_Delete(record);
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(answer, "response");
    collect_warnings(resp, o->warnings);
    const char *b64 = json_str(resp, "patch");
    char err[256];
    if (b64 != NULL) {
        cJSON *ops = decode_patch(b64, err, sizeof err);
        if (ops == NULL || patch_apply(o->mutated, ops, err, sizeof err) != 0) {
            // The API server answers such a patch with a 500 for the user.
            o->error = xasprintf("the mutating webhook's patch does not apply: %s", err);
            cJSON_Delete(ops);
            cJSON_Delete(answer);
            return -1;
        }
        cJSON_Delete(o->patch);
        o->patch = ops;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "allowed"))) {
        take_denial(resp, o);
        cJSON_Delete(answer);
        return 0;
    }
    cJSON_Delete(answer);

validate:
    record = NULL;
    answer =
        call_webhook(p, ADMIT_VALIDATE, deleting ? NULL : o->mutated, old, ro, seq, &record, o);
    if (answer == NULL)
        return -1;
    resp = cJSON_GetObjectItemCaseSensitive(answer, "response");
    collect_warnings(resp, o->warnings);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "allowed")))
        take_denial(resp, o);
    o->rules = cJSON_DetachItemFromObjectCaseSensitive(record, "rules");
    const char *skipped = json_str(record, "skipped");
    o->skipped = skipped ? xstrdup(skipped) : NULL;
    if (o->rules == NULL)
        o->rules = cJSON_CreateArray();
    cJSON_Delete(record);
    cJSON_Delete(answer);
    return 0;
}

struct policy *
simulate_policy_load(const char *path)
{
    struct diag d = {0};
    struct policy *p = policy_load_file(path, &d);
    diag_print(&d, stderr);
    diag_free(&d);
    return p;
}

struct exceptions *
simulate_exceptions_load(const char *path)
{
    struct diag d = {0};
    struct exceptions *x = exceptions_load_file(path, &d);
    diag_print(&d, stderr);
    diag_free(&d);
    return x;
}

bool
simulate_operation_valid(const char *op)
{
    return strcmp(op, "CREATE") == 0 || strcmp(op, "UPDATE") == 0 || strcmp(op, "DELETE") == 0;
}

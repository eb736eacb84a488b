// SPDX-License-Identifier: Apache-2.0
// A stand-in review from the first bytes of a body the server could not hold, so the review is
// still answered with its uid (and denied, for objects the webhook guards) rather than failed.
#include "server/unheld.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"
#include "util/jsonr.h"
#include "server/review.h"

// Containers deeper than this are not cut inside: the fields read lie at most four deep
// (request.userInfo.groups).
#define UNHELD_DEPTH 32

unsigned
unheld_timeout(const char *value)
{
    if (value == NULL)
        return 0;
    size_t digits = strspn(value, "0123456789");
    if (digits == 0 || digits > 4 || strcmp(value + digits, "s") != 0)
        return 0;
    return (unsigned)strtoul(value, NULL, 10);
}

// The prefix cut after its last complete member (before a comma outside a string, after a
// closing bracket, or after an opening one) and closed: its open objects and arrays get their
// closing brackets. It is not checked here: a prefix that is not JSON stays not JSON, and the
// decoder says so. Returns a malloc'd copy; *len gets its length.
static char *
closed(const char *s, size_t n, size_t *len)
{
    char closer[UNHELD_DEPTH]; // what each open container needs, outermost first
    size_t depth = 0, cut = 0, cut_depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_string) {
            if (ch == '\\')
                i++; // the escaped byte, whatever it is
            else if (ch == '"')
                in_string = false;
            continue;
        }
        if (ch == '"') {
            in_string = true;
        } else if (ch == '{' || ch == '[') {
            if (depth < UNHELD_DEPTH)
                closer[depth] = ch == '{' ? '}' : ']';
            if (++depth <= UNHELD_DEPTH) {
                cut = i + 1;
                cut_depth = depth;
            }
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                break; // unbalanced: what came before decides
            if (--depth <= UNHELD_DEPTH) {
                cut = i + 1;
                cut_depth = depth;
            }
            if (depth == 0)
                break; // the document is whole
        } else if (ch == ',' && depth <= UNHELD_DEPTH) {
            cut = i;
            cut_depth = depth;
        }
    }
    // Between the last cut and the end no container closed below it (a close is a cut), so
    // the closers it needs are still those recorded.
    char *out = xmalloc(cut + cut_depth + 1);
    memcpy(out, s, cut);
    for (size_t d = 0; d < cut_depth; d++)
        out[cut + d] = closer[cut_depth - 1 - d];
    *len = cut + cut_depth;
    out[*len] = '\0';
    return out;
}

static cJSON *
string_item(const char *s)
{
    return cJSON_CreateString(s != NULL ? s : "");
}

// The object the review stands for, as far as it is known: its kind (request.kind, or the
// object's own when that arrived), name and namespace.
static cJSON *
stub_object(const struct review_request *req, const cJSON *request)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(request, "kind");
    const char *k = json_str(kind, "kind"), *group = json_str(kind, "group");
    const char *version = json_str(kind, "version");
    const cJSON *own = req->op == REVIEW_DELETE ? req->old_object : req->object;
    char *api;
    if (k != NULL && k[0] != '\0') {
        api = group != NULL && group[0] != '\0'
                  ? xasprintf("%s/%s", group, version != NULL ? version : "")
                  : xstrdup(version != NULL ? version : "");
    } else {
        k = json_str(own, "kind");
        api = xstrdup(json_str(own, "apiVersion") ? json_str(own, "apiVersion") : "");
    }
    const char *name = req->name;
    if (name[0] == '\0')
        name = json_str(cJSON_GetObjectItemCaseSensitive(own, "metadata"), "name");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "apiVersion", cJSON_CreateString(api));
    cJSON_AddItemToObject(o, "kind", string_item(k));
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddItemToObject(meta, "name", string_item(name));
    if (req->namespace[0] != '\0')
        cJSON_AddItemToObject(meta, "namespace", cJSON_CreateString(req->namespace));
    cJSON_AddItemToObject(o, "metadata", meta);
    free(api);
    return o;
}

// The stand-in review: the request's own fields, decoded, and a stub in place of the object
// (and of oldObject, on UPDATE and DELETE) the body went on to carry.
static cJSON *
stand_in(const struct review_request *req)
{
    const cJSON *request = cJSON_GetObjectItemCaseSensitive(req->root, "request");
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "kind", cJSON_CreateString("AdmissionReview"));
    cJSON_AddItemToObject(root, "apiVersion", cJSON_CreateString("admission.k8s.io/v1"));
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "request", r);
    cJSON_AddItemToObject(r, "uid", cJSON_CreateString(req->uid));
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(request, "kind");
    if (cJSON_IsObject(kind))
        cJSON_AddItemToObject(r, "kind", cJSON_Duplicate(kind, true));
    cJSON *res = cJSON_CreateObject();
    cJSON_AddItemToObject(res, "group", cJSON_CreateString(req->group));
    cJSON_AddItemToObject(res, "version", cJSON_CreateString(req->version));
    cJSON_AddItemToObject(res, "resource", cJSON_CreateString(req->resource));
    cJSON_AddItemToObject(r, "resource", res);
    cJSON_AddItemToObject(r, "name", cJSON_CreateString(req->name));
    cJSON_AddItemToObject(r, "namespace", cJSON_CreateString(req->namespace));
    cJSON_AddItemToObject(r, "operation", cJSON_CreateString(req->operation));
    cJSON *user = cJSON_CreateObject();
    cJSON_AddItemToObject(user, "username", cJSON_CreateString(req->username));
    cJSON *groups = cJSON_CreateArray();
    for (size_t i = 0; i < req->group_count; i++)
        cJSON_AddItemToArray(groups, cJSON_CreateString(req->groups[i]));
    cJSON_AddItemToObject(user, "groups", groups);
    cJSON_AddItemToObject(r, "userInfo", user);
    bool old = req->op == REVIEW_UPDATE || req->op == REVIEW_DELETE;
    cJSON_AddItemToObject(
        r, "object", req->op == REVIEW_DELETE ? cJSON_CreateNull() : stub_object(req, request));
    cJSON_AddItemToObject(r, "oldObject", old ? stub_object(req, request) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "dryRun", cJSON_CreateBool(req->dry_run));
    return root;
}

char *
unheld_review(const char *prefix, size_t n, size_t *len, char *err, size_t errlen)
{
    size_t text_len;
    char *text = closed(prefix, n, &text_len);
    struct review_request req;
    char why[160];
    int rc = review_decode(text, text_len, &req, why, sizeof why);
    free(text);
    if (rc != 0) {
        snprintf(err, errlen, "%s", why);
        review_request_free(&req);
        return NULL;
    }
    cJSON *review = stand_in(&req);
    review_request_free(&req);
    char *out = cJSON_PrintUnformatted(review);
    cJSON_Delete(review);
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *len = strlen(out);
    return out;
}

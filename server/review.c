// SPDX-License-Identifier: Apache-2.0
// The AdmissionReview v1 codec, following the API server's own rules for webhooks.
#include "server/review.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

// ---- the request tree's arena ------------------------------------------------------------------
//
// A review of a 1000-component Application is a tree of about 100 000 cJSON nodes and strings.
// Allocating each with malloc and freeing each with cJSON_Delete was half the cost of a review,
// so review_decode parses into an arena: cJSON's allocation hooks bump a pointer in the chunks of
// the arena the calling thread is parsing into, and review_request_free drops the chunks whole.
// Outside a parse the hooks are plain malloc and free, so every other cJSON use is unchanged.
// Nothing may detach or delete an item of a decoded tree (it is const to its readers).
// Sanitizer builds keep one malloc per node so they still see every access, unless
// -DREVIEW_ARENA=1 asks for the arena (the fuzzers run it both ways).
#ifdef REVIEW_ARENA
#elif defined(__SANITIZE_ADDRESS__)
#define REVIEW_ARENA 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define REVIEW_ARENA 0
#endif
#endif
#ifndef REVIEW_ARENA
#define REVIEW_ARENA 1
#endif

struct review_chunk {
    struct review_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

// The arena the calling thread parses into, or NULL (set only inside review_decode).
static _Thread_local struct review_chunk **tl_arena;
// The size of the first chunk of the arena being filled: about what the body's tree needs.
static _Thread_local size_t tl_first;

static struct review_chunk *
chunk_new(size_t size)
{
    struct review_chunk *c = xmalloc(sizeof *c + size);
    c->size = size;
    c->used = 0;
    return c;
}

static void *
arena_malloc(size_t n)
{
    if (tl_arena == NULL)
        return xmalloc(n);
    n = (n + 15) & ~(size_t)15;
    struct review_chunk *c = *tl_arena;
    if (c == NULL || c->size - c->used < n) {
        // Each further chunk doubles the arena, so an underestimate costs a few chunks more.
        size_t want = c ? c->size * 2 : tl_first;
        struct review_chunk *fresh = chunk_new(want > n ? want : n);
        fresh->next = c;
        *tl_arena = c = fresh;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void
arena_free(void *p)
{
    if (tl_arena != NULL)
        for (const struct review_chunk *c = *tl_arena; c != NULL; c = c->next)
            if ((unsigned char *)p >= c->data && (unsigned char *)p < c->data + c->size)
                return; // released with the whole arena
    free(p);
}

static void
arena_release(struct review_chunk *c)
{
    while (c != NULL) {
        struct review_chunk *next = c->next;
        free(c);
        c = next;
    }
}

static const char *const OPERATIONS[REVIEW_OPERATION_COUNT] = {"CREATE", "UPDATE", "DELETE",
                                                               "CONNECT", "unknown"};

const char *
review_operation_name(enum review_operation op)
{
    return op < REVIEW_OPERATION_COUNT ? OPERATIONS[op] : OPERATIONS[REVIEW_UNKNOWN];
}

void
review_init(void)
{
    cJSON_Hooks hooks = {arena_malloc, arena_free};
    cJSON_InitHooks(&hooks);
}

static bool
utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        // Runs of ASCII, the bulk of a review, eight bytes at a time.
        uint64_t w;
        if (i + 8 <= n && (memcpy(&w, s + i, 8), (w & 0x8080808080808080u) == 0)) {
            i += 8;
            continue;
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + need >= n)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += need + 1;
    }
    return true;
}

bool
review_utf8_valid(const char *s, size_t n)
{
    return utf8_valid((const unsigned char *)s, n);
}

// True when a string in the (already parsed, so valid) JSON text holds the escape \u0000. cJSON
// decodes it into a C string that ends there, so tableguard would judge "orders\u0000-prod" as
// "orders" while the API server and KubeVela see the whole name. Outside strings a backslash
// cannot occur in valid JSON, so an odd run of backslashes before "u0000" is that escape.
static bool
has_escaped_nul(const char *s, size_t n)
{
    const char *p = s;
    while ((p = memmem(p, n - (size_t)(p - s), "\\u0000", 6)) != NULL) {
        size_t at = (size_t)(p - s), run = 1;
        while (run <= at && s[at - run] == '\\')
            run++;
        if (run % 2 == 1)
            return true;
        p++;
    }
    return false;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *
key_of(const cJSON *c)
{
    return c->string ? c->string : "";
}

// Objects with up to this many keys (nearly all of them) are checked pair by pair, which needs
// no allocation and no sort; larger ones are sorted.
enum { DUP_PAIRWISE_MAX = 16 };

static bool
object_has_duplicate_keys(const cJSON *obj)
{
    const char *seen[DUP_PAIRWISE_MAX];
    size_t n = 0;
    const cJSON *c = obj->child;
    for (; c != NULL && n < DUP_PAIRWISE_MAX; c = c->next) {
        const char *k = key_of(c);
        for (size_t i = 0; i < n; i++)
            if (seen[i][0] == k[0] && strcmp(seen[i], k) == 0)
                return true;
        seen[n++] = k;
    }
    if (c == NULL)
        return false;
    for (; c != NULL; c = c->next)
        n++;
    const char **keys = xmalloc(n * sizeof *keys);
    size_t i = 0;
    for (c = obj->child; c != NULL; c = c->next)
        keys[i++] = key_of(c);
    qsort(keys, n, sizeof *keys, cmp_str);
    bool dup = false;
    for (i = 1; i < n && !dup; i++)
        dup = strcmp(keys[i - 1], keys[i]) == 0;
    free(keys);
    return dup;
}

// The API server never sends duplicate keys; a body that has them is not one it sent, and
// two readers could disagree on which value counts. Checked over the whole tree.
static bool
has_duplicate_keys(const cJSON *node)
{
    for (; node != NULL; node = node->next) {
        // The type test of cJSON_IsObject and cJSON_IsArray, without a library call per node.
        int type = node->type & 0xFF;
        if (type == cJSON_Object && object_has_duplicate_keys(node))
            return true;
        if ((type == cJSON_Object || type == cJSON_Array) && has_duplicate_keys(node->child))
            return true;
    }
    return false;
}

// Reads an optional string member: absent or null gives def; any other non-string is an error.
static int
opt_string(const cJSON *obj, const char *key, const char *def, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsString(v))
        return -1;
    *out = v->valuestring;
    return 0;
}

static int
fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

static int
decode_user(const cJSON *request, struct review_request *req, char *err, size_t errlen)
{
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(request, "userInfo");
    req->username = "";
    if (user == NULL || cJSON_IsNull(user))
        return 0;
    if (!cJSON_IsObject(user))
        return fail(err, errlen, "request.userInfo is not an object");
    if (opt_string(user, "username", "", &req->username) != 0)
        return fail(err, errlen, "request.userInfo.username is not a string");
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(user, "groups");
    if (groups == NULL || cJSON_IsNull(groups))
        return 0;
    if (!cJSON_IsArray(groups))
        return fail(err, errlen, "request.userInfo.groups is not an array");
    size_t n = (size_t)cJSON_GetArraySize(groups);
    req->groups = xcalloc(n, sizeof *req->groups);
    const cJSON *g;
    cJSON_ArrayForEach(g, groups)
    {
        if (!cJSON_IsString(g))
            return fail(err, errlen, "request.userInfo.groups holds a non-string");
        req->groups[req->group_count++] = g->valuestring;
    }
    return 0;
}

int
review_decode(const char *body, size_t len, struct review_request *req, char *err, size_t errlen)
{
    memset(req, 0, sizeof *req);
    req->op = REVIEW_UNKNOWN;
    if (len == 0)
        return fail(err, errlen, "empty body");
    if (!utf8_valid((const unsigned char *)body, len))
        return fail(err, errlen, "body is not valid UTF-8");
    if (memchr(body, '\0', len) != NULL)
        return fail(err, errlen, "body holds a NUL byte");
    const char *end = NULL;
    struct review_chunk *arena = NULL;
    // A parsed review takes a little over three times the bytes of its text.
    tl_first = len < 4096 ? 16384 : 4 * len;
    tl_arena = REVIEW_ARENA ? &arena : NULL;
    req->root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    tl_arena = NULL;
    req->arena = arena;
    if (req->root == NULL)
        return fail(err, errlen, "body is not valid JSON (or nests deeper than 1000 levels)");
    for (; end < body + len; end++)
        if (*end != ' ' && *end != '\n' && *end != '\r' && *end != '\t')
            return fail(err, errlen, "trailing data after the JSON document");
    const cJSON *root = req->root;
    if (!cJSON_IsObject(root))
        return fail(err, errlen, "body is not a JSON object");
    if (has_duplicate_keys(root))
        return fail(err, errlen, "body has duplicate object keys");
    if (has_escaped_nul(body, len))
        return fail(err, errlen, "body holds an escaped NUL character (\\u0000)");
    const char *api = NULL, *kind = NULL;
    if (opt_string(root, "apiVersion", NULL, &api) != 0 || api == NULL ||
        strcmp(api, "admission.k8s.io/v1") != 0)
        return fail(err, errlen, "apiVersion is not admission.k8s.io/v1");
    if (opt_string(root, "kind", NULL, &kind) != 0 || kind == NULL ||
        strcmp(kind, "AdmissionReview") != 0)
        return fail(err, errlen, "kind is not AdmissionReview");
    const cJSON *request = cJSON_GetObjectItemCaseSensitive(root, "request");
    if (!cJSON_IsObject(request))
        return fail(err, errlen, "request is missing or not an object");
    if (opt_string(request, "uid", NULL, &req->uid) != 0 || req->uid == NULL || req->uid[0] == '\0')
        return fail(err, errlen, "request.uid is missing or not a non-empty string");
    if (opt_string(request, "operation", NULL, &req->operation) != 0 || req->operation == NULL)
        return fail(err, errlen, "request.operation is missing or not a string");
    enum review_operation op = REVIEW_CREATE;
    while (op < REVIEW_UNKNOWN && strcmp(req->operation, OPERATIONS[op]) != 0)
        op++;
    if (op == REVIEW_UNKNOWN)
        return fail(err, errlen, "request.operation is not CREATE, UPDATE, DELETE or CONNECT");
    req->op = op;
    if (opt_string(request, "namespace", "", &req->namespace) != 0)
        return fail(err, errlen, "request.namespace is not a string");
    if (opt_string(request, "name", "", &req->name) != 0)
        return fail(err, errlen, "request.name is not a string");
    const cJSON *resource = cJSON_GetObjectItemCaseSensitive(request, "resource");
    if (resource != NULL && !cJSON_IsNull(resource) && !cJSON_IsObject(resource))
        return fail(err, errlen, "request.resource is not an object");
    if (opt_string(resource, "group", "", &req->group) != 0 ||
        opt_string(resource, "version", "", &req->version) != 0 ||
        opt_string(resource, "resource", "", &req->resource) != 0)
        return fail(err, errlen, "request.resource holds a non-string field");
    const cJSON *dry = cJSON_GetObjectItemCaseSensitive(request, "dryRun");
    if (dry != NULL && !cJSON_IsNull(dry) && !cJSON_IsBool(dry))
        return fail(err, errlen, "request.dryRun is not a boolean");
    req->dry_run = cJSON_IsTrue(dry);
    if (decode_user(request, req, err, errlen) != 0)
        return -1;
    req->object = cJSON_GetObjectItemCaseSensitive(request, "object");
    req->old_object = cJSON_GetObjectItemCaseSensitive(request, "oldObject");
    // The namespace of a namespaced object is in the request; fall back to the object's own.
    if (req->namespace[0] == '\0') {
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(req->object, "metadata");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(meta, "namespace");
        if (cJSON_IsString(ns))
            req->namespace = ns->valuestring;
    }
    return 0;
}

void
review_request_free(struct review_request *req)
{
    if (req == NULL)
        return;
    if (req->arena != NULL)
        arena_release(req->arena);
    else
        cJSON_Delete(req->root);
    free(req->groups);
    memset(req, 0, sizeof *req);
}

static char *
base64(const char *s, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

static void
oom_if_null(const void *p)
{
    if (p == NULL) {
        fprintf(stderr, "tableguard: out of memory encoding a response\n");
        abort();
    }
}

static void
add_ref(cJSON *o, const char *key, const char *value)
{
    cJSON_AddItemToObjectCS(o, key, cJSON_CreateStringReference(value));
}

static cJSON *
add_object(cJSON *o, const char *key, cJSON *item)
{
    oom_if_null(item);
    cJSON_AddItemToObjectCS(o, key, item);
    return item;
}

// The tree points at the caller's strings and literal keys (nothing is copied), and it is
// printed into one allocation sized from those strings, so it does not grow by copies.
char *
review_encode(const struct review_response *r, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    oom_if_null(root);
    size_t hint = 512 + strlen(r->uid);
    add_ref(root, "apiVersion", "admission.k8s.io/v1");
    add_ref(root, "kind", "AdmissionReview");
    cJSON *resp = add_object(root, "response", cJSON_CreateObject());
    add_ref(resp, "uid", r->uid);
    cJSON_AddItemToObjectCS(resp, "allowed", cJSON_CreateBool(r->allowed));
    char *b64 = NULL;
    if (r->patch_json != NULL) {
        b64 = base64(r->patch_json, strlen(r->patch_json));
    } else if (r->patch != NULL && cJSON_GetArraySize(r->patch) > 0) {
        char *ops = cJSON_PrintUnformatted(r->patch);
        oom_if_null(ops);
        b64 = base64(ops, strlen(ops));
        cJSON_free(ops);
    }
    if (b64 != NULL) {
        add_ref(resp, "patchType", "JSONPatch");
        add_ref(resp, "patch", b64);
        hint += strlen(b64);
    }
    if (!r->allowed) {
        cJSON *status = add_object(resp, "status", cJSON_CreateObject());
        cJSON_AddItemToObjectCS(status, "code", cJSON_CreateNumber(403));
        add_ref(status, "reason", "Forbidden");
        const char *message = r->message ? r->message : "denied";
        add_ref(status, "message", message);
        hint += 2 * strlen(message); // room for escapes
    }
    if (r->warning_count > 0) {
        cJSON *w = add_object(resp, "warnings", cJSON_CreateArray());
        for (size_t i = 0; i < r->warning_count; i++) {
            cJSON_AddItemToArray(w, cJSON_CreateStringReference(r->warnings[i]));
            hint += 2 * strlen(r->warnings[i]) + 3;
        }
    }
    cJSON *ann = add_object(resp, "auditAnnotations", cJSON_CreateObject());
    add_ref(ann, "decision", r->audit_decision);
    // The cluster's audit event does not carry the review's uid: this joins it to our record.
    add_ref(ann, "request-uid", r->uid);
    hint += strlen(r->uid);
    if (r->audit_rules != NULL && r->audit_rules[0] != '\0') {
        add_ref(ann, "rules", r->audit_rules);
        hint += 2 * strlen(r->audit_rules);
    }
    char *out = cJSON_PrintBuffered(root, (int)hint, 0);
    oom_if_null(out);
    cJSON_Delete(root);
    free(b64);
    *len = strlen(out);
    return out;
}

char *
review_error_body(const char *message, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    oom_if_null(root);
    cJSON_AddStringToObject(root, "error", message);
    char *out = cJSON_PrintUnformatted(root);
    oom_if_null(out);
    cJSON_Delete(root);
    *len = strlen(out);
    return out;
}

// SPDX-License-Identifier: Apache-2.0
// `tableguard check` and `tableguard test`: manifests (YAML through libyaml, or JSON) become
// AdmissionReview bodies answered by admit_handle, the mutating answer's patch is decoded and
// applied as the API server applies it, and the mutated object goes to the validating webhook.
#include "server/check.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "policy/patch.h"
#include "policy/policy.h"
#include "policy/xalloc.h"
#include "server/admit.h"

// Manifests are Kubernetes objects (at most 3 MiB in etcd); the reader allows some slack.
#define CHECK_MAX_INPUT (16u << 20)
#define CHECK_MAX_DEPTH 200
// Aliases make a YAML tree a graph; expanding one is bounded.
#define CHECK_MAX_NODES 1000000

// ---- YAML (1.2 core schema) to cJSON -----------------------------------------------------------

enum scalar_kind { SK_STRING, SK_NULL, SK_BOOL, SK_INT, SK_FLOAT, SK_SPECIAL_FLOAT };

static bool
all_of(const char *s, const char *set)
{
    return *s != '\0' && s[strspn(s, set)] == '\0';
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
static bool
is_float(const char *s)
{
    const char *p = s + (*s == '-' || *s == '+');
    size_t whole = strspn(p, "0123456789"), frac = 0;
    p += whole;
    if (*p == '.') {
        frac = strspn(p + 1, "0123456789");
        p += 1 + frac;
    }
    if (whole == 0 && frac == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        p += *p == '-' || *p == '+';
        size_t exp = strspn(p, "0123456789");
        if (exp == 0)
            return false;
        p += exp;
    }
    return *p == '\0';
}

// What a plain scalar means to kubectl, whose YAML reader (go-yaml v2 behind sigs.k8s.io/yaml)
// follows YAML 1.1 for booleans: yes/no/on/off/y/n are booleans there, and what kubectl sends
// is what the webhook sees.
static bool
yaml11_true(const char *s)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                      "on",   "On",   "ON",   "y",   "Y"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (strcmp(s, yes[i]) == 0)
            return true;
    return false;
}

static enum scalar_kind
resolve_plain(const char *s)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const bools[] = {
        "true", "True", "TRUE", "false", "False", "FALSE", "yes", "Yes", "YES", "no", "No",
        "NO",   "on",   "On",   "ON",    "off",   "Off",   "OFF", "y",   "Y",   "n",  "N"};
    static const char *const specials[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf", "+.INF",
                                           "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN"};
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
        if (strcmp(s, nulls[i]) == 0)
            return SK_NULL;
    for (size_t i = 0; i < sizeof bools / sizeof *bools; i++)
        if (strcmp(s, bools[i]) == 0)
            return SK_BOOL;
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++)
        if (strcmp(s, specials[i]) == 0)
            return SK_SPECIAL_FLOAT;
    const char *digits = s + (*s == '-' || *s == '+');
    if (all_of(digits, "0123456789") || (strncmp(s, "0o", 2) == 0 && all_of(s + 2, "01234567")) ||
        (strncmp(s, "0x", 2) == 0 && all_of(s + 2, "0123456789abcdefABCDEF")))
        return SK_INT;
    return is_float(s) ? SK_FLOAT : SK_STRING;
}

struct yconv {
    yaml_document_t *doc;
    const char *file;
    size_t nodes;
    char *err;
    size_t errlen;
};

static cJSON *yconv_fail(struct yconv *y, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static cJSON *
yconv_fail(struct yconv *y, const yaml_node_t *n, const char *fmt, ...)
{
    if (y->err[0] == '\0') {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(y->err, y->errlen, "%s:%zu:%zu: %s", y->file, n->start_mark.line + 1,
                 n->start_mark.column + 1, msg);
    }
    return NULL;
}

static cJSON *
scalar_json(struct yconv *y, const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return cJSON_CreateString(s);
    switch (resolve_plain(s)) {
    case SK_NULL:
        return cJSON_CreateNull();
    case SK_BOOL:
        return cJSON_CreateBool(yaml11_true(s));
    case SK_INT:
        if (strncmp(s, "0o", 2) == 0 || strncmp(s, "0x", 2) == 0)
            return cJSON_CreateNumber((double)strtoull(s + 2, NULL, s[1] == 'o' ? 8 : 16));
        return cJSON_CreateNumber(strtod(s, NULL));
    case SK_FLOAT:
        return cJSON_CreateNumber(strtod(s, NULL));
    case SK_SPECIAL_FLOAT:
        return yconv_fail(y, n, "%s cannot be represented in JSON", s);
    case SK_STRING:
        break;
    }
    return cJSON_CreateString(s);
}

static cJSON *
node_json(struct yconv *y, yaml_node_t *n, int depth)
{
    if (++y->nodes > CHECK_MAX_NODES)
        return yconv_fail(y, n, "%s", "too many nodes after expanding aliases");
    if (depth > CHECK_MAX_DEPTH)
        return yconv_fail(y, n, "%s", "nested too deeply");
    if (n->type == YAML_SCALAR_NODE)
        return scalar_json(y, n);
    if (n->type == YAML_SEQUENCE_NODE) {
        cJSON *arr = cJSON_CreateArray();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            cJSON *v = node_json(y, yaml_document_get_node(y->doc, *it), depth + 1);
            if (v == NULL) {
                cJSON_Delete(arr);
                return NULL;
            }
            cJSON_AddItemToArray(arr, v);
        }
        return arr;
    }
    if (n->type != YAML_MAPPING_NODE)
        return yconv_fail(y, n, "%s", "empty node");
    cJSON *obj = cJSON_CreateObject();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
        cJSON *v = NULL;
        if (k->type != YAML_SCALAR_NODE)
            yconv_fail(y, k, "%s", "a mapping key must be a scalar");
        else if (cJSON_GetObjectItemCaseSensitive(obj, (const char *)k->data.scalar.value))
            yconv_fail(y, k, "duplicate key \"%.100s\"", (const char *)k->data.scalar.value);
        else
            v = node_json(y, yaml_document_get_node(y->doc, p->value), depth + 1);
        if (v == NULL) {
            cJSON_Delete(obj);
            return NULL;
        }
        cJSON_AddItemToObject(obj, (const char *)k->data.scalar.value, v);
    }
    return obj;
}

static void
add_document(cJSON *docs, cJSON *doc)
{
    // A kubectl-style List carries its objects in items.
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
    cJSON *items = cJSON_GetObjectItemCaseSensitive(doc, "items");
    if (cJSON_IsString(kind) && strcmp(kind->valuestring, "List") == 0 && cJSON_IsArray(items)) {
        while (cJSON_GetArraySize(items) > 0)
            cJSON_AddItemToArray(docs, cJSON_DetachItemFromArray(items, 0));
        cJSON_Delete(doc);
        return;
    }
    cJSON_AddItemToArray(docs, doc);
}

// Parses every document of a YAML stream into `docs`; null documents are skipped.
static int
parse_yaml(const char *buf, size_t len, const char *file, cJSON *docs, char *err, size_t errlen)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: cannot initialise the YAML parser", file);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    int rc = 0;
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc)) {
            snprintf(err, errlen, "%s:%zu:%zu: YAML syntax error: %s", file,
                     parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "unknown problem");
            rc = -1;
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root == NULL) {
            yaml_document_delete(&doc);
            break;
        }
        struct yconv y = {&doc, file, 0, err, errlen};
        err[0] = '\0';
        cJSON *v = node_json(&y, root, 0);
        yaml_document_delete(&doc);
        if (v == NULL) {
            rc = -1;
            break;
        }
        if (cJSON_IsNull(v))
            cJSON_Delete(v);
        else
            add_document(docs, v);
    }
    yaml_parser_delete(&parser);
    return rc;
}

// JSON (one value; an array is a list of objects) or a YAML stream.
static int
parse_manifests(const char *buf, size_t len, const char *file, cJSON *docs, char *err,
                size_t errlen)
{
    size_t i = strspn(buf, " \t\r\n");
    if (i < len && (buf[i] == '{' || buf[i] == '[')) {
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
        if (v != NULL && end != NULL && end[strspn(end, " \t\r\n")] == '\0') {
            if (cJSON_IsArray(v)) {
                while (cJSON_GetArraySize(v) > 0)
                    add_document(docs, cJSON_DetachItemFromArray(v, 0));
                cJSON_Delete(v);
            } else {
                add_document(docs, v);
            }
            return 0;
        }
        cJSON_Delete(v);
        // Not JSON after all: flow-style YAML starts the same way.
    }
    return parse_yaml(buf, len, file, docs, err, errlen);
}

static char *
read_input(const char *path, size_t *len, char *err, size_t errlen)
{
    bool stdin_ = strcmp(path, "-") == 0;
    FILE *f = stdin_ ? stdin : fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(CHECK_MAX_INPUT + 1);
    *len = fread(buf, 1, CHECK_MAX_INPUT + 1, f);
    bool bad = ferror(f) != 0;
    if (!stdin_)
        fclose(f);
    if (bad || *len > CHECK_MAX_INPUT || memchr(buf, '\0', *len) != NULL) {
        snprintf(err, errlen, "%s: %s", path,
                 bad                      ? "cannot read"
                 : *len > CHECK_MAX_INPUT ? "larger than 16 MiB"
                                          : "holds a NUL byte (not text)");
        free(buf);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

// Reads and parses a file of manifests; returns an array of objects or NULL with err set.
static cJSON *
load_manifests(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *buf = read_input(path, &len, err, errlen);
    if (buf == NULL)
        return NULL;
    cJSON *docs = cJSON_CreateArray();
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    if (parse_manifests(buf, len, name, docs, err, errlen) != 0) {
        cJSON_Delete(docs);
        docs = NULL;
    }
    free(buf);
    return docs;
}

// ---- cJSON to YAML, through libyaml's emitter --------------------------------------------------

static int
emit_scalar(yaml_emitter_t *e, const char *s, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1, style);
    return yaml_emitter_emit(e, &ev) ? 0 : -1;
}

static int
emit_json(yaml_emitter_t *e, const cJSON *v)
{
    yaml_event_t ev;
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        if (cJSON_IsObject(v))
            yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        else
            yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
        if (!yaml_emitter_emit(e, &ev))
            return -1;
        const cJSON *c;
        cJSON_ArrayForEach(c, v)
        {
            if ((cJSON_IsObject(v) && emit_scalar(e, c->string, YAML_ANY_SCALAR_STYLE) != 0) ||
                emit_json(e, c) != 0)
                return -1;
        }
        if (cJSON_IsObject(v))
            yaml_mapping_end_event_initialize(&ev);
        else
            yaml_sequence_end_event_initialize(&ev);
        return yaml_emitter_emit(e, &ev) ? 0 : -1;
    }
    if (cJSON_IsString(v)) {
        // A string that would read back as another type is quoted, so it stays a string, also
        // for YAML 1.1 readers (kubectl's), which take yes/no/on/off/y/n for booleans.
        static const char *const yaml11[] = {"yes", "no", "on", "off", "y", "n"};
        bool quote = resolve_plain(v->valuestring) != SK_STRING;
        for (size_t i = 0; i < sizeof yaml11 / sizeof *yaml11; i++)
            quote |= strcasecmp(v->valuestring, yaml11[i]) == 0;
        return emit_scalar(e, v->valuestring,
                           quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
    }
    if (cJSON_IsBool(v))
        return emit_scalar(e, cJSON_IsTrue(v) ? "true" : "false", YAML_PLAIN_SCALAR_STYLE);
    if (cJSON_IsNumber(v)) {
        char *num = cJSON_PrintUnformatted(v);
        int rc = emit_scalar(e, num, YAML_PLAIN_SCALAR_STYLE);
        free(num);
        return rc;
    }
    return emit_scalar(e, "null", YAML_PLAIN_SCALAR_STYLE);
}

// Writes `v` as one YAML document (without a "---" line) to `out`.
static int
print_yaml(const cJSON *v, FILE *out)
{
    yaml_emitter_t e;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&e))
        return -1;
    yaml_emitter_set_output_file(&e, out);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    int rc = yaml_emitter_emit(&e, &ev) ? 0 : -1;
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    rc = rc == 0 && yaml_emitter_emit(&e, &ev) ? 0 : -1;
    rc = rc == 0 ? emit_json(&e, v) : -1;
    yaml_document_end_event_initialize(&ev, 1);
    rc = rc == 0 && yaml_emitter_emit(&e, &ev) ? 0 : -1;
    yaml_stream_end_event_initialize(&ev);
    rc = rc == 0 && yaml_emitter_emit(&e, &ev) ? 0 : -1;
    yaml_emitter_delete(&e);
    return rc;
}

// ---- One manifest through both webhooks --------------------------------------------------------

struct request_opts {
    const char *operation; // CREATE or UPDATE
    const char *namespace; // NULL: the manifest's, else "default"
    const char *user;
    cJSON *groups; // array of strings, borrowed
};

struct outcome {
    bool allowed;
    cJSON *patch;    // the decoded JSON Patch operations (an array, possibly empty)
    cJSON *mutated;  // the manifest after the patch
    cJSON *rules;    // the validating record's rules: {name, action, component, table, message}
    cJSON *warnings; // strings, from both webhooks
    char *message;   // the denial, or NULL
    char *skipped;   // why the policy passed the object over, or NULL
    char *error;     // the webhook failed (an answer the API server would refuse), or NULL
};

static void
outcome_free(struct outcome *o)
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

static const char *
get_str(const cJSON *obj, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static const char *
manifest_namespace(const cJSON *manifest, const struct request_opts *o)
{
    const char *ns = get_str(cJSON_GetObjectItemCaseSensitive(manifest, "metadata"), "namespace");
    return o->namespace ? o->namespace : ns ? ns : "default";
}

// An AdmissionReview v1 request as kube-apiserver serialises it.
static char *
review_body(const cJSON *object, const cJSON *old, const struct request_opts *o, unsigned seq)
{
    const char *api = get_str(object, "apiVersion"), *kind = get_str(object, "kind");
    api = api ? api : "";
    kind = kind ? kind : "";
    const char *slash = strchr(api, '/');
    char *group = slash ? xstrndup(api, (size_t)(slash - api)) : xstrdup("");
    char *resource = xasprintf("%ss", kind);
    for (char *p = resource; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    const char *name = get_str(cJSON_GetObjectItemCaseSensitive(object, "metadata"), "name");
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
    cJSON_AddStringToObject(rq, "namespace", manifest_namespace(object, o));
    cJSON_AddStringToObject(rq, "operation", o->operation);
    cJSON *user = cJSON_AddObjectToObject(rq, "userInfo");
    cJSON_AddStringToObject(user, "username", o->user);
    cJSON_AddItemToObject(user, "groups", cJSON_Duplicate(o->groups, 1));
    cJSON_AddItemToObject(rq, "object", cJSON_Duplicate(object, 1));
    cJSON_AddItemToObject(rq, "oldObject", old ? cJSON_Duplicate(old, 1) : cJSON_CreateNull());
    cJSON_AddBoolToObject(rq, "dryRun", true);
    cJSON *opts = cJSON_AddObjectToObject(rq, "options");
    cJSON_AddStringToObject(
        opts, "kind", strcmp(o->operation, "UPDATE") == 0 ? "UpdateOptions" : "CreateOptions");
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
             const struct request_opts *ro, unsigned seq, cJSON **record, struct outcome *o)
{
    char *body = review_body(object, old, ro, seq);
    struct admit_result res;
    admit_handle(p, w, body, strlen(body), true, &res);
    free(body);
    cJSON *answer = res.status == 200 ? cJSON_ParseWithLength(res.body, res.body_len) : NULL;
    if (answer == NULL) {
        o->error = xasprintf("/%s answered HTTP %d: %.*s", admit_webhook_name(w), res.status,
                             (int)res.body_len, res.body ? res.body : "");
    } else {
        // The record points into res, which is freed below: the caller gets a copy.
        *record = cJSON_Duplicate(res.record, 1);
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
take_denial(const cJSON *response, struct outcome *o)
{
    o->allowed = false;
    const char *msg = get_str(cJSON_GetObjectItemCaseSensitive(response, "status"), "message");
    free(o->message);
    o->message = xstrdup(msg ? msg : "denied");
}

// Runs the mutating webhook, applies its patch, then runs the validating webhook on the result.
// Returns 0 when both answered (o->allowed says the decision), -1 with o->error otherwise.
static int
run_manifest(const struct policy *p, const cJSON *manifest, const struct request_opts *ro,
             unsigned seq, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    o->allowed = true;
    o->patch = cJSON_CreateArray();
    o->warnings = cJSON_CreateArray();
    o->mutated = cJSON_Duplicate(manifest, 1);
    const cJSON *old = strcmp(ro->operation, "UPDATE") == 0 ? manifest : NULL;
    cJSON *record = NULL;
    cJSON *answer = call_webhook(p, ADMIT_MUTATE, manifest, old, ro, seq, &record, o);
    if (answer == NULL)
        return -1;
    cJSON_Delete(record);
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(answer, "response");
    collect_warnings(resp, o->warnings);
    const char *b64 = get_str(resp, "patch");
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

    record = NULL;
    answer = call_webhook(p, ADMIT_VALIDATE, o->mutated, old, ro, seq, &record, o);
    if (answer == NULL)
        return -1;
    resp = cJSON_GetObjectItemCaseSensitive(answer, "response");
    collect_warnings(resp, o->warnings);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "allowed")))
        take_denial(resp, o);
    o->rules = cJSON_DetachItemFromObjectCaseSensitive(record, "rules");
    const char *skipped = get_str(record, "skipped");
    o->skipped = skipped ? xstrdup(skipped) : NULL;
    if (o->rules == NULL)
        o->rules = cJSON_CreateArray();
    cJSON_Delete(record);
    cJSON_Delete(answer);
    return 0;
}

// ---- Shared argument handling ------------------------------------------------------------------

static struct policy *
load_policy(const char *path)
{
    struct diag d = {0};
    struct policy *p = policy_load_file(path, &d);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "%s\n", d.lines[i]);
    diag_free(&d);
    return p;
}

static bool
valid_operation(const char *op)
{
    return strcmp(op, "CREATE") == 0 || strcmp(op, "UPDATE") == 0;
}

// ---- tableguard check --------------------------------------------------------------------------

struct check_flags {
    const char *policy;
    struct request_opts ro;
    bool json;
};

static void
check_usage(FILE *f)
{
    fputs("usage: tableguard check --policy FILE [--operation CREATE|UPDATE] [--namespace NS]\n"
          "                        [--user NAME] [--group NAME]... [--output text|json]\n"
          "                        MANIFEST... | -\n\n"
          "Runs each manifest (YAML, several documents allowed, or JSON) through the mutating\n"
          "and then the validating webhook, as the API server would, and prints the decision,\n"
          "the rules that fired, the warnings and the mutated manifest.\n"
          "The policy may also come from TABLEGUARD_POLICY.\n"
          "Exit status: 0 all allowed, 1 any denied, 2 usage or input error.\n",
          f);
}

static int
check_parse(int argc, char **argv, struct check_flags *fl)
{
    static const struct option longs[] = {{"policy", required_argument, NULL, 'p'},
                                          {"operation", required_argument, NULL, 'o'},
                                          {"namespace", required_argument, NULL, 'n'},
                                          {"user", required_argument, NULL, 'u'},
                                          {"group", required_argument, NULL, 'g'},
                                          {"output", required_argument, NULL, 'O'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *env = getenv("TABLEGUARD_POLICY");
    fl->policy = env && *env ? env : NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case 'p':
            fl->policy = optarg;
            break;
        case 'o':
            fl->ro.operation = optarg;
            break;
        case 'n':
            fl->ro.namespace = optarg;
            break;
        case 'u':
            fl->ro.user = optarg;
            break;
        case 'g':
            cJSON_AddItemToArray(fl->ro.groups, cJSON_CreateString(optarg));
            break;
        case 'O':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "tableguard check: --output must be text or json\n");
                return 2;
            }
            fl->json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            check_usage(stdout);
            return 0;
        default:
            check_usage(stderr);
            return 2;
        }
    }
    if (!valid_operation(fl->ro.operation)) {
        fprintf(stderr, "tableguard check: --operation must be CREATE or UPDATE\n");
        return 2;
    }
    if (fl->policy == NULL || optind >= argc) {
        fprintf(stderr, "tableguard check: %s\n",
                fl->policy == NULL ? "--policy is required" : "name at least one manifest or -");
        check_usage(stderr);
        return 2;
    }
    return -1;
}

static const char *
object_label(const cJSON *m, char *buf, size_t len)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m, "metadata");
    const char *kind = get_str(m, "kind"), *name = get_str(meta, "name");
    snprintf(buf, len, "%s \"%s\"", kind ? kind : "object", name ? name : "");
    return buf;
}

static void
print_text(const char *source, int index, const cJSON *m, const struct request_opts *ro,
           const struct outcome *o)
{
    char label[300];
    printf("# %s[%d] %s in namespace \"%s\" (%s): %s", source, index,
           object_label(m, label, sizeof label), manifest_namespace(m, ro), ro->operation,
           o->error     ? "ERROR"
           : o->allowed ? "ALLOWED"
                        : "DENIED");
    if (o->skipped != NULL)
        printf(" (not evaluated: %s)", o->skipped);
    putchar('\n');
    if (o->error != NULL)
        printf("#   error: %s\n", o->error);
    const cJSON *r;
    cJSON_ArrayForEach(r, o->rules)
    {
        printf("#   %s %s: %s\n", get_str(r, "action"), get_str(r, "name"), get_str(r, "message"));
    }
    const cJSON *w;
    cJSON_ArrayForEach(w, o->warnings)
    {
        printf("#   warning: %s\n", w->valuestring);
    }
    if (!o->allowed && o->message != NULL)
        printf("#   denied: %s\n", o->message);
    const cJSON *op;
    cJSON_ArrayForEach(op, o->patch)
    {
        char *value = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(op, "value"));
        printf("#   patch: %s %s %s\n", get_str(op, "op"), get_str(op, "path"), value);
        free(value);
    }
    fputs("---\n", stdout);
    fflush(stdout);
    print_yaml(o->mutated ? o->mutated : m, stdout);
    fflush(stdout);
}

static cJSON *
result_json(const char *source, int index, const cJSON *m, const struct request_opts *ro,
            struct outcome *o)
{
    cJSON *r = cJSON_CreateObject();
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m, "metadata");
    const char *kind = get_str(m, "kind"), *name = get_str(meta, "name");
    cJSON_AddStringToObject(r, "source", source);
    cJSON_AddNumberToObject(r, "document", index);
    cJSON_AddItemToObject(r, "kind", kind ? cJSON_CreateString(kind) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "name", name ? cJSON_CreateString(name) : cJSON_CreateNull());
    cJSON_AddStringToObject(r, "namespace", manifest_namespace(m, ro));
    cJSON_AddStringToObject(r, "operation", ro->operation);
    cJSON_AddBoolToObject(r, "allowed", o->error == NULL && o->allowed);
    cJSON_AddItemToObject(r, "error", o->error ? cJSON_CreateString(o->error) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "skipped",
                          o->skipped ? cJSON_CreateString(o->skipped) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "message",
                          o->message ? cJSON_CreateString(o->message) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "rules", o->rules ? o->rules : cJSON_CreateArray());
    cJSON_AddItemToObject(r, "warnings", o->warnings);
    cJSON_AddItemToObject(r, "patch", o->patch);
    cJSON_AddItemToObject(r, "mutated", o->mutated ? o->mutated : cJSON_Duplicate(m, 1));
    o->rules = o->warnings = o->patch = o->mutated = NULL; // moved into r
    return r;
}

int
check_main(int argc, char **argv)
{
    struct check_flags fl = {.ro = {"CREATE", NULL, "", cJSON_CreateArray()}};
    int rc = check_parse(argc, argv, &fl);
    struct policy *p = NULL;
    if (rc >= 0)
        goto out;
    if (cJSON_GetArraySize(fl.ro.groups) == 0)
        cJSON_AddItemToArray(fl.ro.groups, cJSON_CreateString("system:authenticated"));
    p = load_policy(fl.policy);
    if (p == NULL) {
        rc = 2;
        goto out;
    }
    rc = 0;
    unsigned seq = 0;
    cJSON *report = cJSON_CreateArray();
    for (int i = optind; i < argc; i++) {
        char err[512];
        cJSON *docs = load_manifests(argv[i], err, sizeof err);
        if (docs == NULL) {
            fprintf(stderr, "tableguard check: %s\n", err);
            rc = 2;
            continue;
        }
        const char *source = strcmp(argv[i], "-") == 0 ? "<stdin>" : argv[i];
        int index = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, docs)
        {
            index++;
            if (!cJSON_IsObject(m)) {
                fprintf(stderr, "tableguard check: %s[%d]: not a Kubernetes object (mapping)\n",
                        source, index);
                rc = 2;
                continue;
            }
            struct outcome o;
            run_manifest(p, m, &fl.ro, ++seq, &o);
            if (o.error != NULL || !o.allowed)
                rc = rc == 2 ? 2 : 1;
            if (fl.json)
                cJSON_AddItemToArray(report, result_json(source, index, m, &fl.ro, &o));
            else
                print_text(source, index, m, &fl.ro, &o);
            outcome_free(&o);
        }
        cJSON_Delete(docs);
    }
    if (fl.json) {
        cJSON *top = cJSON_CreateObject();
        cJSON_AddBoolToObject(top, "allowed", rc == 0);
        cJSON_AddNumberToObject(top, "exitCode", rc);
        cJSON_AddItemToObject(top, "results", report);
        char *s = cJSON_Print(top);
        puts(s);
        free(s);
        cJSON_Delete(top);
    } else {
        cJSON_Delete(report);
    }
out:
    policy_unref(p);
    cJSON_Delete(fl.ro.groups);
    return rc;
}

// ---- tableguard test ---------------------------------------------------------------------------

struct suite {
    const char *path;
    char *dir; // the suite file's directory: paths in it are relative to it
    cJSON *root;
    size_t passed, failed;
};

// A path in the suite, resolved against the suite's directory.
static char *
suite_path(const struct suite *s, const char *rel)
{
    return rel[0] == '/' ? xstrdup(rel) : xasprintf("%s/%s", s->dir, rel);
}

// Checks the keys of a suite mapping against the allowed ones; prints and returns -1 on a stray.
static int
keys_ok(const char *where, const cJSON *obj, const char *const *allowed, const char *expected)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, obj)
    {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], c->string) != 0)
            i++;
        if (allowed[i] == NULL) {
            fprintf(stderr, "%s: unknown key \"%s\" (expected %s)\n", where, c->string, expected);
            return -1;
        }
    }
    return 0;
}

// A manifest given inline (a mapping) or as a path to a file with exactly one document.
static cJSON *
suite_manifest(const struct suite *s, const cJSON *v, char *err, size_t errlen)
{
    if (cJSON_IsObject(v))
        return cJSON_Duplicate(v, 1);
    if (!cJSON_IsString(v)) {
        snprintf(err, errlen, "must be a mapping or a file path");
        return NULL;
    }
    char *path = suite_path(s, v->valuestring);
    cJSON *docs = load_manifests(path, err, errlen);
    free(path);
    if (docs == NULL)
        return NULL;
    cJSON *m = NULL;
    if (cJSON_GetArraySize(docs) != 1 || !cJSON_IsObject(cJSON_GetArrayItem(docs, 0)))
        snprintf(err, errlen, "%s: expected exactly one object, found %d documents", v->valuestring,
                 cJSON_GetArraySize(docs));
    else
        m = cJSON_DetachItemFromArray(docs, 0);
    cJSON_Delete(docs);
    return m;
}

// The first place where two JSON values differ, as a JSON Pointer, written to buf.
static bool
first_difference(const cJSON *a, const cJSON *b, char *buf, size_t len)
{
    if (cJSON_Compare(a, b, true))
        return false;
    size_t base = strlen(buf);
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, a)
        {
            snprintf(buf + base, len - base, "/%s", c->string);
            if (first_difference(c, cJSON_GetObjectItemCaseSensitive(b, c->string), buf, len))
                return true;
        }
        cJSON_ArrayForEach(c, b)
        {
            snprintf(buf + base, len - base, "/%s", c->string);
            if (cJSON_GetObjectItemCaseSensitive(a, c->string) == NULL)
                return true;
        }
    } else if (cJSON_IsArray(a) && cJSON_IsArray(b)) {
        int n = cJSON_GetArraySize(a), m = cJSON_GetArraySize(b);
        for (int i = 0; i < (n > m ? n : m); i++) {
            snprintf(buf + base, len - base, "/%d", i);
            if (first_difference(cJSON_GetArrayItem(a, i), cJSON_GetArrayItem(b, i), buf, len))
                return true;
        }
    }
    buf[base] = '\0';
    return true;
}

static char *
json_short(const cJSON *v)
{
    if (v == NULL)
        return xstrdup("(absent)");
    char *s = cJSON_PrintUnformatted(v);
    if (strlen(s) > 160)
        memcpy(s + 157, "...", 4);
    return s;
}

// The distinct rule names that fired, in order, as a JSON array of strings.
static cJSON *
fired_rules(const struct outcome *o)
{
    cJSON *names = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, o->rules)
    {
        const char *name = get_str(r, "name");
        bool seen = false;
        const cJSON *n;
        cJSON_ArrayForEach(n, names) seen |= strcmp(n->valuestring, name) == 0;
        if (!seen)
            cJSON_AddItemToArray(names, cJSON_CreateString(name));
    }
    return names;
}

static bool
same_name_set(const cJSON *want, const cJSON *got)
{
    if (cJSON_GetArraySize(want) != cJSON_GetArraySize(got))
        return false;
    const cJSON *w, *g;
    cJSON_ArrayForEach(w, want)
    {
        bool found = false;
        cJSON_ArrayForEach(g, got) found |=
            cJSON_IsString(w) && strcmp(w->valuestring, g->valuestring) == 0;
        if (!found)
            return false;
    }
    return true;
}

// Compares an outcome with a case's expect block; writes why it differs into why.
static bool
expect_met(const struct suite *s, const cJSON *expect, const struct outcome *o, char *why,
           size_t len)
{
    const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(expect, "allowed");
    if (cJSON_IsTrue(allowed) != o->allowed) {
        snprintf(why, len, "expected %s, got %s%s%.300s", o->allowed ? "denied" : "allowed",
                 o->allowed ? "allowed" : "denied", o->message ? ": " : "",
                 o->message ? o->message : "");
        return false;
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(expect, "rules");
    cJSON *fired = fired_rules(o);
    bool ok = rules == NULL || same_name_set(rules, fired);
    if (!ok) {
        char *want = json_short(rules), *got = json_short(fired);
        snprintf(why, len, "expected rules %s, got %s", want, got);
        free(want);
        free(got);
    }
    cJSON_Delete(fired);
    if (!ok)
        return false;
    const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(expect, "warnings");
    if (cJSON_IsNumber(warnings) && warnings->valuedouble != cJSON_GetArraySize(o->warnings)) {
        char *got = json_short(o->warnings);
        snprintf(why, len, "expected %d warnings, got %d: %s", warnings->valueint,
                 cJSON_GetArraySize(o->warnings), got);
        free(got);
        return false;
    }
    if (cJSON_IsArray(warnings) && !cJSON_Compare(warnings, o->warnings, true)) {
        char *want = json_short(warnings), *got = json_short(o->warnings);
        snprintf(why, len, "expected warnings %s, got %s", want, got);
        free(want);
        free(got);
        return false;
    }
    const char *message = get_str(expect, "message");
    if (message != NULL && (o->message == NULL || strstr(o->message, message) == NULL)) {
        snprintf(why, len, "expected the denial to contain \"%.100s\", got %.300s", message,
                 o->message ? o->message : "no denial");
        return false;
    }
    const cJSON *mutated = cJSON_GetObjectItemCaseSensitive(expect, "mutated");
    if (mutated != NULL) {
        char err[256] = "";
        cJSON *want = suite_manifest(s, mutated, err, sizeof err);
        if (want == NULL) {
            snprintf(why, len, "expect.mutated: %s", err);
            return false;
        }
        char at[512] = "";
        bool differs = first_difference(want, o->mutated, at, sizeof at);
        if (differs) {
            const cJSON *w = want, *g = o->mutated;
            // Walk both to the differing place to show the two values.
            char *save = NULL, *copy = xstrdup(at);
            for (char *tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
                w = cJSON_IsArray(w) ? cJSON_GetArrayItem(w, atoi(tok))
                                     : cJSON_GetObjectItemCaseSensitive(w, tok);
                g = cJSON_IsArray(g) ? cJSON_GetArrayItem(g, atoi(tok))
                                     : cJSON_GetObjectItemCaseSensitive(g, tok);
            }
            free(copy);
            char *ws = json_short(w), *gs = json_short(g);
            snprintf(why, len, "mutated manifest differs at %s: expected %s, got %s",
                     at[0] ? at : "/", ws, gs);
            free(ws);
            free(gs);
        }
        cJSON_Delete(want);
        if (differs)
            return false;
    }
    return true;
}

static const char *const CASE_KEYS[] = {"name", "description", "manifest", "operation", "namespace",
                                        "user", "groups",      "expect",   NULL};
static const char *const EXPECT_KEYS[] = {"allowed", "rules",   "warnings",
                                          "message", "mutated", NULL};

// Runs one case; returns 0 when it ran (passed or failed), -1 when the case itself is malformed.
static int
run_case(struct suite *s, const struct policy *p, const cJSON *c, size_t index, unsigned seq)
{
    char where[300], why[1024] = "";
    const char *name = get_str(c, "name");
    snprintf(where, sizeof where, "%s: cases[%zu]%s%s", s->path, index, name ? " " : "",
             name ? name : "");
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(c, "expect");
    if (!cJSON_IsObject(c) || name == NULL || !cJSON_IsObject(expect) ||
        !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(expect, "allowed"))) {
        fprintf(stderr, "%s: a case needs name, manifest and expect.allowed (true or false)\n",
                where);
        return -1;
    }
    if (keys_ok(where, c, CASE_KEYS,
                "name, description, manifest, operation, namespace, user, groups, expect") != 0 ||
        keys_ok(where, expect, EXPECT_KEYS, "allowed, rules, warnings, message, mutated") != 0)
        return -1;
    struct request_opts ro = {get_str(c, "operation"), get_str(c, "namespace"), get_str(c, "user"),
                              NULL};
    ro.operation = ro.operation ? ro.operation : "CREATE";
    ro.user = ro.user ? ro.user : "tableguard-test";
    if (!valid_operation(ro.operation)) {
        fprintf(stderr, "%s: operation must be CREATE or UPDATE\n", where);
        return -1;
    }
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(c, "groups");
    ro.groups = groups ? cJSON_Duplicate(groups, 1) : cJSON_CreateArray();
    if (groups == NULL)
        cJSON_AddItemToArray(ro.groups, cJSON_CreateString("system:authenticated"));
    cJSON *m = suite_manifest(s, cJSON_GetObjectItemCaseSensitive(c, "manifest"), why, sizeof why);
    if (m == NULL) {
        fprintf(stderr, "%s: manifest: %s\n", where, why);
        cJSON_Delete(ro.groups);
        return -1;
    }
    struct outcome o;
    bool ok = false;
    if (run_manifest(p, m, &ro, seq, &o) != 0)
        snprintf(why, sizeof why, "%s", o.error);
    else
        ok = expect_met(s, expect, &o, why, sizeof why);
    if (ok) {
        printf("PASS %s\n", name);
        s->passed++;
    } else {
        printf("FAIL %s: %s\n", name, why);
        s->failed++;
    }
    outcome_free(&o);
    cJSON_Delete(m);
    cJSON_Delete(ro.groups);
    return 0;
}

static int
run_suite(struct suite *s)
{
    char err[512];
    cJSON *docs = load_manifests(s->path, err, sizeof err);
    if (docs == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    s->root = cJSON_DetachItemFromArray(docs, 0);
    cJSON_Delete(docs);
    static const char *const top[] = {"policy", "cases", NULL};
    const char *policy = get_str(s->root, "policy");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(s->root, "cases");
    if (!cJSON_IsObject(s->root) || policy == NULL || !cJSON_IsArray(cases)) {
        fprintf(stderr, "%s: a suite needs policy (a file path) and cases (a list)\n", s->path);
        return -1;
    }
    if (keys_ok(s->path, s->root, top, "policy, cases") != 0)
        return -1;
    char *ppath = suite_path(s, policy);
    struct policy *p = load_policy(ppath);
    free(ppath);
    if (p == NULL)
        return -1;
    int rc = 0;
    size_t i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        if (run_case(s, p, c, i, (unsigned)i + 1) != 0)
            rc = -1;
        i++;
    }
    policy_unref(p);
    return rc;
}

int
check_test_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fputs("usage: tableguard test SUITE.yaml...\n\n"
              "Runs the cases of each suite against the suite's policy and prints PASS or FAIL\n"
              "per case, then \"N passed, M failed\". Exit status: 0 all passed, 1 any failed,\n"
              "2 a suite or its policy does not load. The format is in docs/policy.md.\n",
              f);
        return argc < 2 ? 2 : 0;
    }
    size_t passed = 0, failed = 0;
    bool broken = false;
    for (int i = 1; i < argc; i++) {
        char *copy = xstrdup(argv[i]);
        struct suite s = {.path = argv[i], .dir = xstrdup(dirname(copy))};
        free(copy);
        broken |= run_suite(&s) != 0;
        passed += s.passed;
        failed += s.failed;
        cJSON_Delete(s.root);
        free(s.dir);
    }
    printf("%zu passed, %zu failed\n", passed, failed);
    return broken ? 2 : failed > 0 ? 1 : 0;
}

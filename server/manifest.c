// SPDX-License-Identifier: Apache-2.0
// Manifests for the offline commands: YAML streams (through libyaml, resolved as kubectl resolves
// them) or JSON read into cJSON objects, and cJSON printed back as YAML.
#include "server/manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "server/review.h"
#include "util/file.h"
#include "util/xalloc.h"

// Manifests are Kubernetes objects (at most 3 MiB in etcd); the reader allows some slack.
#define MANIFEST_MAX_INPUT (16u << 20)
#define MANIFEST_MAX_DEPTH 200
// Aliases make a YAML tree a graph; expanding one is bounded.
#define MANIFEST_MAX_NODES 1000000

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
    if (++y->nodes > MANIFEST_MAX_NODES)
        return yconv_fail(y, n, "%s", "too many nodes after expanding aliases");
    if (depth > MANIFEST_MAX_DEPTH)
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
    // cJSON leaves valueint unused on objects: it carries the mapping's line (manifest.h).
    obj->valueint = n->start_mark.line < INT_MAX ? (int)n->start_mark.line + 1 : 0;
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
        // Detached from the head, one at a time: counting the list each time was quadratic.
        while (items->child != NULL)
            cJSON_AddItemToArray(docs, cJSON_DetachItemViaPointer(items, items->child));
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
                while (v->child != NULL)
                    add_document(docs, cJSON_DetachItemViaPointer(v, v->child));
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
    char why[256];
    char *buf = strcmp(path, "-") == 0
                    ? file_read_stream(stdin, MANIFEST_MAX_INPUT, len, why, sizeof why)
                    : file_read(path, MANIFEST_MAX_INPUT, len, why, sizeof why);
    if (buf == NULL)
        snprintf(err, errlen, "%s: %s", path, why);
    return buf;
}

cJSON *
manifest_parse(const char *buf, size_t len, const char *name, char *err, size_t errlen)
{
    // cJSON takes any bytes in a string, and libyaml's emitter, given invalid UTF-8 when check
    // prints a manifest back, double-frees or loops for ever: nothing unchecked gets that far.
    if (memchr(buf, '\0', len) != NULL || !review_utf8_valid(buf, len)) {
        snprintf(err, errlen, "%s: %s", name,
                 memchr(buf, '\0', len) != NULL ? "holds a NUL byte (not text)"
                                                : "is not valid UTF-8");
        return NULL;
    }
    cJSON *docs = cJSON_CreateArray();
    if (parse_manifests(buf, len, name, docs, err, errlen) != 0) {
        cJSON_Delete(docs);
        docs = NULL;
    }
    return docs;
}

// Reads and parses a file of manifests; returns an array of objects or NULL with err set.
cJSON *
manifest_load(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *buf = read_input(path, &len, err, errlen);
    if (buf == NULL)
        return NULL;
    cJSON *docs = manifest_parse(buf, len, strcmp(path, "-") == 0 ? "<stdin>" : path, err, errlen);
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
int
manifest_print_yaml(const cJSON *v, FILE *out)
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

int
manifest_line(const cJSON *object)
{
    return cJSON_IsObject(object) && object->valueint > 0 ? object->valueint : 0;
}

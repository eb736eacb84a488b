// SPDX-License-Identifier: Apache-2.0
// JSON Patch building and applying for the "add" operations tableguard emits.
#include "policy/patch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonr.h"
#include "util/xalloc.h"

static void
put(struct patch_path *p, const char *s, size_t n)
{
    if (p->len + n + 1 > p->cap) {
        p->cap = (p->len + n + 1) * 2;
        p->buf = xrealloc(p->buf, p->cap);
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

void
patch_path_push(struct patch_path *p, const char *token)
{
    put(p, "/", 1);
    for (const char *t = token; *t; t++) {
        if (*t == '~')
            put(p, "~0", 2);
        else if (*t == '/')
            put(p, "~1", 2);
        else
            put(p, t, 1);
    }
}

void
patch_path_push_index(struct patch_path *p, size_t index)
{
    char num[24];
    int n = snprintf(num, sizeof num, "/%zu", index);
    put(p, num, (size_t)n);
}

void
patch_path_truncate(struct patch_path *p, size_t len)
{
    if (len < p->len) {
        p->len = len;
        p->buf[len] = '\0';
    }
}

void
patch_path_free(struct patch_path *p)
{
    free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
}

void
patch_add(cJSON *ops, const char *path, cJSON *value)
{
    // Literal keys and a reference for "add": one operation per component, so only the path
    // is copied.
    cJSON *op = cJSON_CreateObject();
    cJSON *add = cJSON_CreateStringReference("add"), *p = cJSON_CreateString(path);
    if (op == NULL || add == NULL || p == NULL) {
        fprintf(stderr, "tableguard: out of memory building a patch\n");
        abort();
    }
    cJSON_AddItemToObjectCS(op, "op", add);
    cJSON_AddItemToObjectCS(op, "path", p);
    cJSON_AddItemToObjectCS(op, "value", value);
    cJSON_AddItemToArray(ops, op);
}

// Decodes one reference token of `path` starting after a '/', into out; returns the end.
static const char *
next_token(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && *s != '/'; s++) {
        char c = *s;
        if (c == '~' && (s[1] == '0' || s[1] == '1')) {
            c = s[1] == '0' ? '~' : '/';
            s++;
        }
        if (n + 1 < cap)
            out[n++] = c;
    }
    out[n] = '\0';
    return s;
}

// The last array element a path went through. tableguard's patches add to components in
// order, so resolving /spec/components/<i> from the previous element instead of the array's
// head keeps applying n operations linear (cJSON arrays are linked lists).
struct cursor {
    const cJSON *array;
    int index;
    cJSON *item;
};

static cJSON *
array_item(cJSON *array, int index, struct cursor *cur)
{
    if (index < 0)
        return NULL;
    cJSON *it = array->child;
    int at = 0;
    if (cur->array == array && cur->item != NULL && index >= cur->index) {
        it = cur->item;
        at = cur->index;
    }
    for (; it != NULL && at < index; at++)
        it = it->next;
    if (it != NULL)
        *cur = (struct cursor){array, index, it};
    return it;
}

static int
apply_add(cJSON *doc, const char *path, const cJSON *value, struct cursor *cur, char *err,
          size_t errlen)
{
    if (*path != '/') {
        snprintf(err, errlen, "path \"%s\" does not start with \"/\"", path);
        return -1;
    }
    cJSON *parent = doc;
    char token[512];
    const char *s = path;
    for (;;) {
        s = next_token(s + 1, token, sizeof token);
        if (*s == '\0')
            break;
        cJSON *child =
            cJSON_IsArray(parent) ? array_item(parent, atoi(token), cur) : json_get(parent, token);
        if (child == NULL) {
            snprintf(err, errlen, "path \"%s\": \"%s\" does not exist", path, token);
            return -1;
        }
        parent = child;
    }
    cJSON *copy = cJSON_Duplicate(value, 1);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cJSON_IsObject(parent)) {
        if (json_get(parent, token) != NULL) {
            *cur = (struct cursor){0}; // the replaced value may hold the cursor's array
            cJSON_ReplaceItemInObjectCaseSensitive(parent, token, copy);
        } else
            cJSON_AddItemToObject(parent, token, copy);
        return 0;
    }
    if (cJSON_IsArray(parent)) {
        int size = cJSON_GetArraySize(parent);
        if (strcmp(token, "-") == 0 || atoi(token) == size) {
            cJSON_AddItemToArray(parent, copy);
            return 0;
        }
        if (atoi(token) >= 0 && atoi(token) < size) {
            // Linked by hand: Debian 12's cJSON_InsertItemInArray refuses every insertion.
            // cJSON keeps the tail in the head's prev, which the links below preserve.
            cJSON *after = array_item(parent, atoi(token), cur);
            *cur = (struct cursor){0}; // the elements after the insertion moved up
            copy->next = after;
            copy->prev = after->prev;
            if (after == parent->child)
                parent->child = copy;
            else
                after->prev->next = copy;
            after->prev = copy;
            return 0;
        }
    }
    cJSON_Delete(copy);
    snprintf(err, errlen, "path \"%s\": cannot add to %s", path,
             cJSON_IsArray(parent) ? "that array index" : "a scalar");
    return -1;
}

int
patch_apply(cJSON *doc, const cJSON *ops, char *err, size_t errlen)
{
    const cJSON *op;
    struct cursor cur = {0};
    cJSON_ArrayForEach(op, ops)
    {
        const cJSON *kind = json_get(op, "op");
        const cJSON *path = json_get(op, "path");
        const cJSON *value = json_get(op, "value");
        if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "add") != 0) {
            snprintf(err, errlen, "only \"add\" operations are supported");
            return -1;
        }
        if (!cJSON_IsString(path) || value == NULL) {
            snprintf(err, errlen, "an \"add\" operation needs a path and a value");
            return -1;
        }
        if (apply_add(doc, path->valuestring, value, &cur, err, errlen) != 0)
            return -1;
    }
    return 0;
}

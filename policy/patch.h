// SPDX-License-Identifier: Apache-2.0
// JSON Patch (RFC 6902) building: "add" operations with escaped JSON Pointer paths (RFC 6901),
// and applying them, for the offline check and the tests.
#ifndef TABLEGUARD_PATCH_H
#define TABLEGUARD_PATCH_H

#include <cjson/cJSON.h>
#include <stddef.h>

// A JSON Pointer under construction. Zero-initialise; patch_path_free releases it.
struct patch_path {
    char *buf;
    size_t len;
    size_t cap;
};

// Appends "/" and `token` with "~" escaped as "~0" and "/" as "~1".
void patch_path_push(struct patch_path *p, const char *token);
// Appends "/" and the decimal index.
void patch_path_push_index(struct patch_path *p, size_t index);
// Drops the path back to `len` bytes (a length previously read from p->len).
void patch_path_truncate(struct patch_path *p, size_t len);
void patch_path_free(struct patch_path *p);

// Appends {"op":"add","path":path,"value":value} to the array `ops`; takes ownership of value.
void patch_add(cJSON *ops, const char *path, cJSON *value);

// Applies the "add" operations of `ops` to `doc` in place. Returns 0, or -1 with a reason in
// err when an operation is not "add", its path does not resolve, or its value is missing.
int patch_apply(cJSON *doc, const cJSON *ops, char *err, size_t errlen);

#endif

// SPDX-License-Identifier: Apache-2.0
// Manifests for the offline commands: a file (or "-" for stdin) of Kubernetes objects as a YAML
// stream or JSON, read into cJSON as kubectl would send them, and cJSON printed back as YAML.
#ifndef TABLEGUARD_MANIFEST_H
#define TABLEGUARD_MANIFEST_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

// Reads and parses a file of manifests ("-": stdin). JSON is one value (an array is a list of
// objects); YAML may hold several documents; null documents are skipped and a kubectl List is
// unpacked into its items. Returns a new array the caller frees with cJSON_Delete, or NULL with
// err set to "FILE:LINE:COL: message" or "FILE: message".
cJSON *manifest_load(const char *path, char *err, size_t errlen);

// The same for a buffer already read (NUL-terminated at buf[len]): `name` stands for the file in
// messages. Input that holds a NUL byte or is not valid UTF-8 is refused before any parser sees
// it.
cJSON *manifest_parse(const char *buf, size_t len, const char *name, char *err, size_t errlen);

// The 1-based line where a mapping read from YAML starts (manifest_load keeps it in the object's
// otherwise unused valueint, and cJSON_Duplicate copies it), or 0 when unknown (JSON input).
int manifest_line(const cJSON *object);

// Writes v as one YAML document (without a "---" line) to out. Strings that would read back as
// another type are quoted. Returns 0, or -1 when the emitter fails.
int manifest_print_yaml(const cJSON *v, FILE *out);

#endif

// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the manifest reader of `tableguard check` and `tableguard test`: an
// arbitrary file through manifest_parse (JSON or a YAML stream), and every object it yields
// printed back through libyaml's emitter, as check prints a mutated manifest.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/manifest.h"
#include "tests/fuzz/fuzz_util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    check(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char err[512] = "";
    cJSON *docs = manifest_parse(buf, size, "fuzz", err, sizeof err);
    // A refusal always says why; a success is a list of documents.
    check(docs != NULL || err[0] != '\0');
    if (docs != NULL) {
        check(cJSON_IsArray(docs));
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        check(f != NULL);
        const cJSON *doc;
        cJSON_ArrayForEach(doc, docs)
        {
            // Everything the reader accepted can be printed back.
            check(manifest_print_yaml(doc, f) == 0);
        }
        fclose(f);
        free(out);
        cJSON_Delete(docs);
    }
    free(buf);
    return 0;
}

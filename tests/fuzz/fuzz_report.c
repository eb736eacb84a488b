// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for `audit report`, which reads log files from outside: the first byte picks
// the output and filters, the rest is the log. It must end in status 0, 1 or 2, never crash, and
// the scanner must read every line as cJSON does: each line read both ways gives the same
// record (or the same error), and the whole report is the same byte for byte.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/recview.h"
#include "server/report.h"
#include "tests/fuzz/fuzz_util.h"

// Reads one line with the scanner and with cJSON alone and checks they agree.
static void
same_line(struct recview *fast, struct recview *tree, const uint8_t *line, size_t len)
{
    char *a = malloc(len + 1), *b = malloc(len + 1), ea[512] = "", eb[512] = "";
    check(a != NULL && b != NULL);
    memcpy(a, line, len);
    memcpy(b, line, len);
    struct chain_record pa, pb;
    size_t la = 0, lb = 0;
    const struct recview_record *ra = recview_read(fast, a, len, false, &pa, &la, ea, sizeof ea);
    const struct recview_record *rb = recview_read(tree, b, len, true, &pb, &lb, eb, sizeof eb);
    check((ra == NULL) == (rb == NULL));
    check(strcmp(ea, eb) == 0);
    check(memcmp(a, b, len) == 0);
    if (ra != NULL) {
        check(la == lb && memcmp(&pa, &pb, sizeof pa) == 0);
        check(!rb->scanned && recview_equal(ra, rb));
    }
    free(a);
    free(b);
}

// The log with every line's "prev" and "hash" made to chain (where the line has both in the
// writer's form), so that the report reads past the first line the fuzzer changed.
static uint8_t *
rechain(const uint8_t *log, size_t len)
{
    static const char prev_key[] = "\"prev\":\"";
    uint8_t *out = malloc(len + 1);
    check(out != NULL);
    memcpy(out, log, len);
    struct chain c = {0};
    char prev[CHAIN_HASH_HEX + 1] = CHAIN_GENESIS, hash[CHAIN_HASH_HEX + 1];
    for (uint8_t *p = out, *end = out + len; p < end;) {
        uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl != NULL ? nl : end) - p);
        if (n > CHAIN_HASH_TAIL_LEN + 2 && memcmp(p + n - CHAIN_HASH_TAIL_LEN, CHAIN_HASH_PREFIX,
                                                  sizeof(CHAIN_HASH_PREFIX) - 1) == 0) {
            size_t body = n + 1 - CHAIN_HASH_TAIL_LEN;
            uint8_t *at = memmem(p, body - 1, prev_key, sizeof(prev_key) - 1);
            if (at != NULL && (size_t)(at - p) + sizeof(prev_key) - 1 + CHAIN_HASH_HEX < body)
                memcpy(at + sizeof(prev_key) - 1, prev, CHAIN_HASH_HEX);
            uint8_t comma = p[body - 1];
            p[body - 1] = '}';
            check(chain_digest(&c, (const char *)p, body, hash) == 0);
            p[body - 1] = comma;
            memcpy(p + n - CHAIN_HASH_HEX - 2, hash, CHAIN_HASH_HEX);
            memcpy(prev, hash, sizeof(prev));
        }
        p += n + 1;
    }
    chain_free(&c);
    return out;
}

// Runs the report on the log; returns its status, its output and its messages in *out.
static int
run(const struct report_options *o, const uint8_t *log, size_t len, char **out, size_t *outlen)
{
    FILE *in = fmemopen((void *)log, len, "rb");
    FILE *sink = open_memstream(out, outlen);
    check(in != NULL && sink != NULL);
    int rc = report_stream(o, in, "fuzz.log", sink, sink);
    fclose(in);
    fclose(sink);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned pick = data[0];
    struct report_options o = {
        .output = pick % 3 == 0   ? REPORT_TEXT
                  : pick % 3 == 1 ? REPORT_CSV
                                  : REPORT_JSON,
        .changed = (pick & 4) != 0,
        .table = (pick & 8) ? "*-prod" : NULL,
        .user = (pick & 16) ? "a*" : NULL,
        .decisions = (pick & 32) ? 1 | 2 : 0,
        .has_since = (pick & 64) != 0,
        .since_ms = 1735787000000LL, // 2025-01-02T03:03:20Z
    };
    const uint8_t *log = data + 1, *end = data + size;
    struct recview *fast = recview_new(), *tree = recview_new();
    for (const uint8_t *p = log; p < end;) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl != NULL ? nl : end) - p);
        same_line(fast, tree, p, len);
        p += len + 1;
    }
    recview_free(fast);
    recview_free(tree);

    // The whole report, scanner or cJSON alone, on the log as given and rechained.
    uint8_t *chained = rechain(log, size - 1);
    for (int i = 0; i < 2; i++) {
        const uint8_t *in = i == 0 ? log : chained;
        char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        o.tree_only = false;
        int rc = run(&o, in, size - 1, &a, &la);
        o.tree_only = true;
        check(run(&o, in, size - 1, &b, &lb) == rc);
        check(rc == 0 || rc == 1 || rc == 2);
        check(la == lb && memcmp(a, b, la) == 0);
        free(a);
        free(b);
    }
    free(chained);
    return 0;
}

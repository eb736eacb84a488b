// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for `audit report`, which reads log files from outside: the first byte picks
// the output and filters, the rest is the log. It must end in status 0, 1 or 2, never crash.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/report.h"
#include "tests/fuzz/fuzz_util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (sink == NULL)
        sink = fopen("/dev/null", "w");
    check(sink != NULL);
    if (size < 1)
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
    if (size == 1)
        return 0;
    FILE *in = fmemopen((void *)(data + 1), size - 1, "rb");
    check(in != NULL);
    int rc = report_stream(&o, in, "fuzz.log", sink, sink);
    fclose(in);
    check(rc == 0 || rc == 1 || rc == 2);
    return 0;
}

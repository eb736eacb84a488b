// SPDX-License-Identifier: Apache-2.0
// The audit record's cost without the network: admit_handle on one review, with and without its
// record, and the record appended to a log in each sync mode. For callgrind (instructions per
// record: the difference between two modes, divided by N) and for CPU time per request.
//
// usage: record_bench POLICY_FILE PAYLOAD mutate|validate N MODE [LOG]
//   MODE off: no record; build: the record built, not written; none|batch|always: built and
//   appended to LOG with that --audit-sync mode.
// Prints the process's CPU time (user + system, every thread) per review in microseconds.
// Build it against a library as run.sh builds core_bench (one command):
//   cc -std=c11 -D_GNU_SOURCE -I. -O2 -o B/record_bench tests/bench/record_bench.c
//      B/libtableguard.a $(pkg-config --cflags --libs libmicrohttpd gnutls libcjson yaml-0.1
//      libcrypto) -lpthread
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "policy/policy.h"
#include "util/file.h"
#include "server/admit.h"
#include "server/audit.h"
#include "server/review.h"

static double
cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int
main(int argc, char **argv)
{
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: record_bench POLICY_FILE PAYLOAD mutate|validate N "
                        "off|build|none|batch|always [LOG]\n");
        return 2;
    }
    review_init();
    size_t blen;
    char why[256];
    struct diag d = {0};
    struct policy *p = policy_load_file(argv[1], &d);
    diag_free(&d);
    if (p == NULL) {
        fprintf(stderr, "record_bench: %s does not load\n", argv[1]);
        return 2;
    }
    char *body = file_read(argv[2], (size_t)1 << 30, &blen, why, sizeof why);
    if (body == NULL) {
        fprintf(stderr, "record_bench: %s\n", why);
        return 2;
    }
    enum admit_webhook w = strcmp(argv[3], "mutate") == 0 ? ADMIT_MUTATE : ADMIT_VALIDATE;
    long n = atol(argv[4]);
    const char *mode = argv[5];
    bool record = strcmp(mode, "off") != 0;
    struct audit *a = NULL;
    enum audit_sync sync;
    if (audit_sync_parse(mode, &sync) == 0) {
        if (argc != 7) {
            fprintf(stderr, "record_bench: mode %s needs a LOG\n", mode);
            return 2;
        }
        struct audit_options o = {.path = argv[6], .sync = sync, .replica = "bench-0"};
        char err[256];
        a = audit_open(&o, err, sizeof err);
        if (a == NULL) {
            fprintf(stderr, "record_bench: %s\n", err);
            return 2;
        }
    }
    double t0 = cpu_seconds();
    for (long i = 0; i < n; i++) {
        struct admit_result res;
        admit_handle(p, w, body, blen, record, &res);
        char err[256];
        if (a != NULL &&
            audit_append_text(a, res.record.buf, res.record.len, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "record_bench: %s\n", err);
            return 1;
        }
        admit_result_free(&res);
    }
    double t1 = cpu_seconds();
    audit_close(a);
    printf("%s %s %s: %.2f us CPU per review\n", argv[2], argv[3], mode,
           (t1 - t0) * 1e6 / (double)(n > 0 ? n : 1));
    free(body);
    policy_unref(p);
    return 0;
}

// SPDX-License-Identifier: Apache-2.0
// `tableguard policy lint`: the policy loader's diagnostics, one file after another.
#include "server/lint.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

static void
usage(FILE *f)
{
    fputs("usage: tableguard policy lint [--print] FILE...\n\n"
          "Loads each policy file as the server would and prints \"FILE: policy OK\" or every\n"
          "diagnostic as FILE:LINE:COL: MESSAGE. --print writes the normalised policy, with\n"
          "every default filled in, to stdout (the OK line then goes to stderr).\n"
          "Exit status: 0 every file loads, 1 any file does not, 2 usage error.\n",
          f);
}

int
lint_main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"print", no_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool print = false, files = false;
    size_t printed = 0;
    int c;
    // "+": options come before the files, as they always have.
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longs, NULL)) != -1) {
        if (c == 'p') {
            print = true;
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tableguard policy lint: unknown flag \"%s\"\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    int i = optind;
    int rc = 0;
    for (; i < argc; i++) {
        files = true;
        struct diag d = {0};
        struct policy *p = policy_load_file(argv[i], &d);
        diag_print(&d, stderr);
        diag_free(&d);
        if (p == NULL) {
            rc = 1;
            continue;
        }
        // With --print stdout stays a YAML stream a pipeline can read.
        fprintf(print ? stderr : stdout, "%s: policy OK\n", argv[i]);
        if (print) {
            if (printed++ > 0)
                fputs("---\n", stdout);
            policy_print(p, stdout);
        }
        policy_unref(p);
    }
    if (!files) {
        usage(stderr);
        return 2;
    }
    return rc;
}

// SPDX-License-Identifier: Apache-2.0
// `tableguard policy lint`: the policy loader's diagnostics, one file after another.
#include "server/lint.h"

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
    bool print = false, files = false;
    size_t printed = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--print") == 0) {
            print = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tableguard policy lint: unknown flag \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    int rc = 0;
    for (; i < argc; i++) {
        files = true;
        struct diag d = {0};
        struct policy *p = policy_load_file(argv[i], &d);
        for (size_t k = 0; k < d.count; k++)
            fprintf(stderr, "%s\n", d.lines[k]);
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

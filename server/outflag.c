// SPDX-License-Identifier: Apache-2.0
// One parser for the output-format flag, so every command spells and checks it the same way.
#include "server/outflag.h"

#include <getopt.h>
#include <string.h>

int
outflag_parse(int argc, char **argv, const char *cmd, void (*usage)(FILE *), bool *json)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = "text";
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (c == 'o') {
            output = optarg;
        } else if (c == 'h') {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "%s: unknown flag or missing value \"%s\"\n", cmd, argv[optind - 1]);
            usage(stderr);
            return -1;
        }
    }
    *json = strcmp(output, "json") == 0;
    if (!*json && strcmp(output, "text") != 0) {
        fprintf(stderr, "%s: --output must be text or json, not \"%s\"\n", cmd, output);
        usage(stderr);
        return -1;
    }
    return 0;
}

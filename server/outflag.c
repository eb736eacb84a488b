// SPDX-License-Identifier: Apache-2.0
// One parser for the output-format flag, so every command spells and checks it the same way.
#include "server/outflag.h"

#include <getopt.h>
#include <string.h>

int
outflag_parse_any(int argc, char **argv, const char *cmd, void (*usage)(FILE *),
                  const char *const *names, int *which)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = names[0];
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
    for (*which = 0; names[*which] != NULL; (*which)++)
        if (strcmp(output, names[*which]) == 0)
            return 0;
    fprintf(stderr, "%s: --output must be", cmd);
    for (int k = 0; names[k] != NULL; k++)
        fprintf(stderr, "%s%s", k == 0 ? " " : names[k + 1] ? ", " : " or ", names[k]);
    fprintf(stderr, ", not \"%s\"\n", output);
    usage(stderr);
    return -1;
}

int
outflag_parse(int argc, char **argv, const char *cmd, void (*usage)(FILE *), bool *json)
{
    static const char *const names[] = {"text", "json", NULL};
    int which = 0, rc = outflag_parse_any(argc, argv, cmd, usage, names, &which);
    *json = which == 1;
    return rc;
}

// SPDX-License-Identifier: Apache-2.0
// The `-o/--output text|json` and `--help` flags that `test` and `version` share, parsed with
// getopt_long in GNU order (flags may follow the operands).
#ifndef TABLEGUARD_OUTFLAG_H
#define TABLEGUARD_OUTFLAG_H

#include <stdbool.h>
#include <stdio.h>

// Parses argv (argv[0] is the command's word; cmd names it in messages, "tableguard test").
// Returns 0 with *json set and optind at the first operand, 1 after printing usage to stdout
// (--help: exit 0), or -1 after printing the problem and usage to stderr (exit 2).
int outflag_parse(int argc, char **argv, const char *cmd, void (*usage)(FILE *), bool *json);

// The same for a command with more formats than text and json: `names` (NULL-terminated; the
// first is the default) are the values --output takes; *which is the index of the one given.
int outflag_parse_any(int argc, char **argv, const char *cmd, void (*usage)(FILE *),
                      const char *const *names, int *which);

#endif

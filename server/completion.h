// SPDX-License-Identifier: Apache-2.0
// `tableguard completion bash|zsh`: a shell completion script for the command table; flags are
// completed from each command's own --help, so the script never falls behind the binary.
#ifndef TABLEGUARD_COMPLETION_H
#define TABLEGUARD_COMPLETION_H

#include <stddef.h>

// A command ("check") or a command with its subcommand ("policy", "lint").
struct completion_word {
    const char *name;
    const char *sub; // NULL for a command without subcommands
};

// argv[0] is "completion". Prints the script to stdout. Returns 0, or 2 on a usage error.
int completion_main(int argc, char **argv, const struct completion_word *words, size_t n);

#endif

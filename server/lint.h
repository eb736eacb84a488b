// SPDX-License-Identifier: Apache-2.0
// `tableguard policy lint [--exceptions FILE] [--strict] [--print] FILE...`: loads each policy file
// with the same loader the server uses and prints "FILE: policy OK" or every diagnostic, for CI and
// the chart.
#ifndef TABLEGUARD_LINT_H
#define TABLEGUARD_LINT_H

// argv[0] is "lint". Prints to stdout (OK lines, --print output) and stderr (diagnostics).
// Returns the exit code: 0 every file loads, 1 any does not, 2 usage error.
int lint_main(int argc, char **argv);

#endif

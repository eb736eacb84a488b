// SPDX-License-Identifier: Apache-2.0
// `tableguard certs`: generate a CA and a serving certificate, or inspect one, on the command line.
#ifndef TABLEGUARD_CERTTOOL_H
#define TABLEGUARD_CERTTOOL_H

// The `tableguard certs` command: argv[0] is "generate" or "inspect", the options follow
// (argv as main passes it, shifted so that argv[0] is the subcommand). Prints results on
// stdout and diagnostics on stderr. Returns the exit code: 0 ok, 1 failure (including a
// certificate that inspect finds unusable), 2 usage error.
int certtool_main(int argc, char **argv);

#endif

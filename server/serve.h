// SPDX-License-Identifier: Apache-2.0
// `tableguard serve`: flags (and their TABLEGUARD_* environment variables), startup, reloads,
// signals and the graceful drain.
#ifndef TABLEGUARD_SERVE_H
#define TABLEGUARD_SERVE_H

// argv[0] is "serve". Returns the process exit code.
int serve_main(int argc, char **argv);

#endif

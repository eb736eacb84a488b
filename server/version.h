// SPDX-License-Identifier: Apache-2.0
// `tableguard version [-o text|json]`: the version, the revision and the libraries in use.
#ifndef TABLEGUARD_VERSION_H
#define TABLEGUARD_VERSION_H

// argv[0] is "version". Prints to stdout. Returns 0, or 2 on a usage error.
int version_main(int argc, char **argv);

#endif

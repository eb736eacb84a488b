// SPDX-License-Identifier: Apache-2.0
// `tableguard check` runs manifests through mutate then validate exactly as the API server would
// call the webhook (server/simulate.h) and prints what it decided.
#ifndef TABLEGUARD_CHECK_H
#define TABLEGUARD_CHECK_H

// `tableguard check --policy FILE [--operation CREATE|UPDATE] [--namespace NS] [--user NAME]
// [--group NAME]... [--output text|json|junit|sarif] MANIFEST|DIR... | -`. argv[0] is "check".
// A directory is walked for *.yaml, *.yml and *.json; a file that cannot be read is a result
// with an error. Returns the exit code: 0 every manifest allowed, 1 any denied, 2 usage or
// input error.
int check_main(int argc, char **argv);

#endif

// SPDX-License-Identifier: Apache-2.0
// The offline commands: `tableguard check` runs manifests through mutate then validate exactly
// as the API server would call the webhook, and `tableguard test` runs a suite of such cases
// against their expected results. Both build real AdmissionReview bodies and answer them with
// admit_handle, the code the server runs.
#ifndef TABLEGUARD_CHECK_H
#define TABLEGUARD_CHECK_H

// `tableguard check --policy FILE [--operation CREATE|UPDATE] [--namespace NS] [--user NAME]
// [--group NAME]... [--output text|json] MANIFEST... | -`. argv[0] is "check".
// Returns the exit code: 0 every manifest allowed, 1 any denied, 2 usage or input error.
int check_main(int argc, char **argv);

// `tableguard test SUITE.yaml...`. argv[0] is "test". Prints "PASS name" or "FAIL name: why"
// per case and "N passed, M failed". Returns 0 all passed, 1 any failed, 2 a suite or its
// policy does not load.
int check_test_main(int argc, char **argv);

#endif

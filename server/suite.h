// SPDX-License-Identifier: Apache-2.0
// `tableguard test` runs a suite of cases (a manifest and the decision it should get) against
// their expected results, through the same simulated API server as `tableguard check`.
#ifndef TABLEGUARD_SUITE_H
#define TABLEGUARD_SUITE_H

// `tableguard test [--output text|json|junit] SUITE.yaml...`. argv[0] is "test". Prints "PASS
// name" or "FAIL name: why" per case and "N passed, M failed" (or every case as JSON or JUnit).
// Returns 0 all passed, 1 any failed, 2 a suite or its policy does not load.
int suite_main(int argc, char **argv);

#endif

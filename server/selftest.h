// SPDX-License-Identifier: Apache-2.0
// `tableguard selftest --url URL --ca FILE`: sends a real AdmissionReview to a running server
// (through its Service, as the chart's `helm test` hook does) and checks both answers.
#ifndef TABLEGUARD_SELFTEST_H
#define TABLEGUARD_SELFTEST_H

// argv[0] is "selftest". Prints one line per check to stdout, errors to stderr. Returns the exit
// code: 0 every check passed, 1 one failed, 2 usage error.
int selftest_main(int argc, char **argv);

#endif

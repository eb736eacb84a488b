// SPDX-License-Identifier: Apache-2.0
// What CI systems read: JUnit XML and SARIF 2.1.0, written from the offline commands' results.
#ifndef TABLEGUARD_CIOUT_H
#define TABLEGUARD_CIOUT_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "policy/policy.h"

/*
 * Writes a JUnit XML report. `cases` is an array of test cases, each an object with "suite"
 * (the <testsuite> it belongs to: cases of one suite must be adjacent), "name", "classname",
 * and optionally "file", "line", "failure" and "failureType" (a failed case), "error" (a case
 * that could not run) and "output" (text for <system-out>). `name` names the <testsuites>.
 * Borrows everything. Returns 0, or -1 when writing fails.
 */
int ciout_junit(const cJSON *cases, const char *name, FILE *out);

/*
 * Writes a SARIF 2.1.0 log of `tableguard check` results (the array --output json prints under
 * "results"): one result per rule a manifest hit, at the file and, when known, the line of the
 * component ("line" in the rule), and one per manifest that could not be read or evaluated.
 * The policy's rules are the driver's rules. Borrows everything. Returns 0, or -1.
 */
int ciout_sarif(const cJSON *results, const struct policy *p, int exit_code, FILE *out);

#endif

// SPDX-License-Identifier: Apache-2.0
// `tableguard audit report`: the decisions of audit log files that match filters, as a table,
// CSV or JSON lines, with the hash chain verified while the files are read.
#ifndef TABLEGUARD_REPORT_H
#define TABLEGUARD_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct report_options {
    long long since_ms, until_ms; // Unix milliseconds; records outside are not reported
    bool has_since, has_until;
    const char *table;     // fnmatch glob on the tables, case-insensitive; NULL: any
    const char *namespace; // fnmatch glob on resource.namespace; NULL: any
    const char *user;      // fnmatch glob on user.username; NULL: any
    unsigned decisions;    // bits: 1 allow, 2 patch, 4 deny; 0: any
    bool changed;          // only persisted changes of protection or of the table set
    enum { REPORT_TEXT, REPORT_CSV, REPORT_JSON } output;
    const char *hmac_key_path; // NULL: plain SHA-256 chain
    bool tree_only;            // parse every line with cJSON, as the scanner's reference
};

/*
 * Parses a time for --since/--until: RFC 3339 (2025-06-01T09:12:44Z, with fractions or an
 * offset), a date (2025-06-01, midnight UTC), or a duration before now_ms (90d, 12h, 30m, 2w).
 * Returns 0 and the Unix milliseconds in *out, or -1.
 */
int report_parse_time(const char *s, long long now_ms, long long *out);

/*
 * Reads the files (sorted by their first seq, so in any order) as one chain, writes the matching
 * decisions to out and a summary and any problem ("FILE:LINE: message") to diag. Stops at the
 * first break of the chain: what came before it is reported. Returns the exit status: 0, 1 when
 * the chain is broken or a file ends in an incomplete record, 2 when a file cannot be read, is
 * not an audit log, or the key cannot be loaded.
 */
int report_run(const struct report_options *o, char **files, size_t nfiles, FILE *out, FILE *diag);

/* Reads one log from `in` (named `name` in messages) as report_run reads a file, with a plain
 * SHA-256 chain. Returns the same statuses. For the fuzzer and tests. */
int report_stream(const struct report_options *o, FILE *in, const char *name, FILE *out,
                  FILE *diag);

/* CLI: `tableguard audit report [options] FILE...` with argv[0] == "report". Returns the exit
 * status (2 for a usage error). */
int report_main(int argc, char **argv);

#endif

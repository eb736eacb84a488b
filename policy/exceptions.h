// SPDX-License-Identifier: Apache-2.0
// Protection exceptions: a ProtectionExceptions document (its own file, so that the people who
// approve exceptions need not edit the policy) that waives named rules for named tables until a
// time. Loaded with the policy's libyaml loader and shape checks; pure: buffers in, values out,
// and the time is always passed in.
//
// Ownership: exceptions_load* return an object holding one reference; exceptions_ref adds one and
// exceptions_unref drops one (freeing at zero; NULL is a no-op). Every pointer an accessor returns
// lives as long as the object.
#ifndef TABLEGUARD_EXCEPTIONS_H
#define TABLEGUARD_EXCEPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/diag.h"
#include "policy/policy.h"

// At most this many exceptions in one file: they are approved one by one, and metrics carry one
// series per exception name.
#define EXCEPTIONS_MAX 256

struct exception {
    char *name; // unique in its file
    char *ticket;
    char *approved_by;
    char *reason;                     // "" when not given
    long long expires;                // Unix seconds; the exception is void from this second on
    char *expires_text;               // as written, RFC 3339
    struct policy_globs namespaces;   // ["*"] when not given
    struct policy_globs applications; // ["*"] when not given
    struct policy_globs tables;
    char **rules; // names of the rules it waives
    size_t rule_count;
    unsigned long line; // 1-based line of the entry in its file
};

struct exceptions;

// Loads a ProtectionExceptions document; `file` names it in diagnostics. On any error returns
// NULL and adds every problem found to diags as "file:line:col: message".
struct exceptions *exceptions_load_buffer(const char *buf, size_t len, const char *file,
                                          struct diag *diags);
// Reads (at most 4 MiB) and loads the file at path.
struct exceptions *exceptions_load_file(const char *path, struct diag *diags);

struct exceptions *exceptions_ref(struct exceptions *x);
void exceptions_unref(struct exceptions *x);

const char *exceptions_name(const struct exceptions *x); // metadata.name
const char *exceptions_file(const struct exceptions *x); // the file name it was loaded as
const char *exceptions_sha256(const struct exceptions *x);
size_t exceptions_count(const struct exceptions *x);
const struct exception *exceptions_at(const struct exceptions *x, size_t i);

// The first exception in force at `now` (Unix seconds) that waives `rule` for `table` of
// Application `app` in namespace ns, or NULL. In force: not expired, and expiring at most
// max_days days after now (0: no cap), so an exception approved beyond the policy's cap is never
// honoured. x may be NULL (no exceptions).
const struct exception *exceptions_waiver(const struct exceptions *x, const char *rule,
                                          const char *table, const char *app, const char *ns,
                                          long long now, unsigned max_days);

// The exceptions that can waive anything in one request: a bit per exception (by file index) for
// each one in force at `now` (as exceptions_waiver judges it) whose namespaces and applications
// globs match ns and app. A request judges every violation against the same namespace and
// Application, so these are worked out once and exceptions_waiver_among tries only the tables.
struct exceptions_view {
    const struct exceptions *x;
    uint64_t in_scope[(EXCEPTIONS_MAX + 63) / 64];
};
void exceptions_view_init(struct exceptions_view *v, const struct exceptions *x, const char *app,
                          const char *ns, long long now, unsigned max_days);
// exceptions_waiver(x, rule, table, app, ns, now, max_days) for the view's x, app, ns, now and
// max_days: the same exception, in file order.
const struct exception *exceptions_waiver_among(const struct exceptions_view *v, const char *rule,
                                                const char *table);

// Checks exceptions against a policy at `now` (Unix seconds). Adds to `errors` what makes an
// exception unable to work as written: a rule the policy does not have, a tables or namespaces
// glob that can never match one of the rules it waives, an expiry further ahead than
// spec.exceptionsMaxDays (the server does not honour it). Adds to `warnings` an exception that
// has expired. Every line is "FILE:LINE: exception \"NAME\": ...".
void exceptions_lint(const struct exceptions *x, const struct policy_spec *s, long long now,
                     struct diag *errors, struct diag *warnings);

// Whether two fnmatch globs (case-insensitive) can match one same string.
bool exceptions_globs_overlap(const char *a, const char *b);

// Parses an RFC 3339 time in UTC ("2026-12-05T00:00:00Z", fractional seconds allowed and
// ignored) into Unix seconds. Returns 0, or -1 with what is wrong in err.
int exceptions_parse_time(const char *s, long long *out, char *err, size_t errlen);

#endif

// SPDX-License-Identifier: Apache-2.0
// The members of an audit log line that `audit report` reads, as a flat record: scanned straight
// from the line when it is plain JSON in the writer's shape, read from a cJSON tree otherwise, with
// the same result either way.
#ifndef TABLEGUARD_RECVIEW_H
#define TABLEGUARD_RECVIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"
#include "server/chain.h"

// What a member holds, as the report tells values apart: absent and null alike, the booleans, a
// string, anything else (a number, an array, an object).
enum recview_kind { RECVIEW_NONE, RECVIEW_TRUE, RECVIEW_FALSE, RECVIEW_STRING, RECVIEW_OTHER };

struct recview_value {
    enum recview_kind kind;
    const char *s; // RECVIEW_STRING only
};

// One member of "tables" (a member that is not an object reads as a row of NULLs).
struct recview_row {
    const char *component, *table, *old_table, *profile, *transition, *exception;
    struct recview_value before[POLICY_SETTING_COUNT], after[POLICY_SETTING_COUNT];
    const char *const *rules; // the strings of its "rules", in order
    size_t nrules;
};

// A member of a "rules" list that names a rule or a table (objects only).
struct recview_hit {
    const char *name, *table;
};

// A line's members. Strings are NULL when the member is absent or not a string; a duplicated key
// reads as its first occurrence, as cJSON_GetObjectItemCaseSensitive does. Everything points into
// the recview that filled it and lives until its next recview_read.
struct recview_record {
    const char *time, *replica, *chain, *uid, *webhook, *operation, *decision, *skipped;
    const char *username;         // user.username
    const char *namespace, *name; // resource.namespace, resource.name
    bool has_code;                // "code" is a number
    double code;
    enum recview_kind dry_run;
    bool tables_array; // "tables" is an array (a version 1 record has none)
    const struct recview_row *rows;
    size_t nrows;
    const struct recview_hit *hits; // "rules"
    size_t nhits;
    const struct recview_hit *excluded; // "excluded"."rules"
    size_t nexcluded;
    bool scanned; // read by the scanner, without a tree
};

// The buffers one reader reuses from line to line, so reading a record allocates nothing once
// they have grown to the largest line. recview_free(NULL) is a no-op.
struct recview *recview_new(void);
void recview_free(struct recview *v);

/*
 * Reads one line (without its newline) as chain_parse_record does: the same checks, the same
 * chain members in *p, the same body (line is modified in place), the same error messages. A
 * line in the writer's shape is scanned without a tree; any other line (escaped keys, unusual
 * numbers, whitespace, deep nesting, an object where a list was expected, anything invalid) is
 * parsed by cJSON, and with tree_only every line is. Returns the record (owned by v), or NULL with
 * err filled.
 */
const struct recview_record *recview_read(struct recview *v, char *line, size_t len, bool tree_only,
                                          struct chain_record *p, size_t *body_len, char *err,
                                          size_t errlen);

/* Whether two records read alike: every member, strings by their content, the code to the bit
 * (scanned aside). For the tests and the fuzzer that hold the scanner to cJSON. */
bool recview_equal(const struct recview_record *a, const struct recview_record *b);

#endif

// SPDX-License-Identifier: Apache-2.0
// Evaluation of a KubeVela Application against a policy: the patch that injects the protection
// trait (mutate), and the violations and warnings of the rules (validate). Pure: no I/O.
//
// Ownership: the input is borrowed. eval_result_free releases everything a result holds;
// findings point at rules of the policy, which must outlive the result.
#ifndef TABLEGUARD_EVAL_H
#define TABLEGUARD_EVAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy/exceptions.h"
#include "policy/policy.h"

struct eval_input {
    const cJSON *object;   // request.object: the Application (may be NULL or not an object)
    const char *namespace; // the request's namespace, "" when absent
    const char *username;  // userInfo.username, "" when absent
    const char *const *groups;
    size_t group_count;
    const cJSON *old_object; // request.oldObject: NULL on CREATE; the Application before an
                             // UPDATE or the one a DELETE removes (may be JSON null or any type)
    const char *operation;   // "CREATE", "UPDATE" or "DELETE"; NULL reads as "CREATE"
    // Why the review cannot be read faithfully (a NUL in a string, nesting deeper than the JSON
    // library holds), or NULL. An object eval would judge is then denied with this reason.
    const char *unreadable;
    long long now; // Unix seconds: exceptions expire against it (eval never reads a clock)
    const struct exceptions *exceptions; // may be NULL: no exceptions
    bool ignore_exclusions; // evaluate even when spec.exclude matches (what an exclusion
                            // bypassed, for the audit record)
};

// The exclusion that matched a request: which list, the request's value, the glob it matched.
// All borrowed from the input and the policy.
struct eval_exclusion {
    const char *by; // "namespace", "user" or "group"
    const char *value;
    const char *glob;
};

// Fills *out with the first exclusion of the policy that matches the request (namespaces, then
// users, then groups) and returns 0; returns -1 when none matches.
int eval_exclusion(const struct policy *p, const struct eval_input *in, struct eval_exclusion *out);

// Why an object was passed over without evaluation.
enum eval_skip {
    EVAL_EVALUATED,       // the rules were applied
    EVAL_NOT_APPLICATION, // not a core.oam.dev Application object
    EVAL_DELETING,        // an UPDATE of an object with metadata.deletionTimestamp set: its
                          // finalizers must be able to run
    EVAL_EXCLUDED,        // the namespace, user or a group is excluded by the policy
    EVAL_UNREADABLE,      // it would be judged, but cannot be read faithfully: denied
};

struct eval_finding {
    const struct policy_rule *rule; // borrowed from the policy
    const char *pattern;            // the rule's table pattern that matched (borrowed)
    char *component;
    char *table;
    char *message; // one line, no control characters
    // Non-NULL: the exception (borrowed from eval_input's exceptions) that waives this finding:
    // it neither denies nor warns as its rule says; a warning names the exception instead.
    const struct exception *exception;
};

// One table a decision examined: a component of a type that holds a table, as it stands in
// oldObject and in object. Settings are 1 (on), 0 (off or unprotected: the trait is absent), -1
// (no such table on that side) or -2 (an error: a non-boolean value, two traits, a bad shape).
// eval_mutate reports in `after` what the object renders once its patch is applied; eval_validate
// reports what the object renders as sent.
struct eval_table {
    char *component;     // component name; for a guarded object "Kind/name"
    char *table;         // table name in the new object (NULL when the table is gone)
    char *old_table;     // table name in oldObject (NULL when none / CREATE)
    const char *profile; // profile name (borrowed from the policy), NULL when none matched
    int before[POLICY_SETTING_COUNT]; // effective settings in oldObject
    int after[POLICY_SETTING_COUNT];  // the same in object
    const char *transition;           // "remove", "rename", "delete", or NULL
    const char *exception;            // exception that waived a rule here (borrowed), or NULL
};

struct eval_result {
    enum eval_skip skip;
    cJSON *patch; // mutate: a JSON array of "add" operations, NULL when there is nothing to add
    struct eval_finding *findings; // validate: every rule a table failed, in component order
    size_t finding_count;
    bool denied;        // validate: a deny rule failed (and no exception waived it)
    char *deny_message; // validate: every deny finding in one line, NULL when allowed
    char **warnings;    // validate: one per warn finding, each under 120 bytes; past
                        // EVAL_WARNINGS_LISTED, one last warning counts the rest
    size_t warning_count;
    struct eval_table *tables; // every table examined, in component order
    size_t table_count;
    size_t warnings_unlisted; // validate: warn findings past EVAL_WARNINGS_LISTED
    // Private to eval.c: the exceptions that can waive a finding of this request (for the
    // Application view_app), worked out at the first finding.
    struct exceptions_view view;
    bool view_ready;
    const char *view_app;
};

// Computes the patch for /mutate into `out` (zeroed first). Returns 0.
int eval_mutate(const struct policy *p, const struct eval_input *in, struct eval_result *out);

// Computes the decision for /validate into `out` (zeroed first). Returns 0.
int eval_validate(const struct policy *p, const struct eval_input *in, struct eval_result *out);

void eval_result_free(struct eval_result *r);

// The longest warning eval emits, in bytes, not counting the terminating NUL.
#define EVAL_WARNING_MAX 119
// At most this many warnings name a finding; one more says how many were left out.
#define EVAL_WARNINGS_LISTED 20
// A denial names at most this many violations, and is at most EVAL_DENY_MAX bytes long.
#define EVAL_DENY_LISTED 10
#define EVAL_DENY_MAX 4096

const char *eval_skip_name(enum eval_skip s);

// ---- For the evaluation of guarded resources (policy/resource.h): one way to judge and word --

// True when the request's namespace, user or a group is excluded by the policy.
bool eval_excluded(const struct policy_spec *s, const struct eval_input *in);
// The first of `g` that matches `s` (borrowed), or NULL.
const char *eval_first_match(const struct policy_globs *g, const char *s);
// Describes a JSON value that is not what was expected ("the string \"x\"", "null", ...).
void eval_describe_value(const cJSON *v, char *buf, size_t len);

// The values of a message template's placeholders (all borrowed; transition may be NULL).
struct eval_subst {
    const char *application, *namespace, *component, *table, *rule, *pattern, *transition;
};
// A rule's message template with its placeholders filled in (names escaped as in built-in
// messages); the caller frees it.
char *eval_expand(const char *tmpl, const struct eval_subst *v);
// `s` with '"' and '\\' escaped, for a name a message puts between quotes: s itself when it needs
// none, else a copy also stored in *owned (the caller frees *owned, which may be NULL).
const char *eval_escape(const char *s, char **owned);
// Makes a message one line (control characters become spaces) without the word "immutable" in
// any case ("unchangeable" instead: Flux with force re-creates an object whose apply fails with
// it). Returns s, or a new string when it replaced the word (s is freed then).
char *eval_one_line(char *s);
// Appends a finding of the object whose table row is `row`, taking the finding's strings, with
// its message kept to one line and clear of the word Flux treats as "delete and re-create". An
// exception that waives the rule for the table marks the finding and the row and warns instead;
// otherwise a warn rule warns: the built-in warning about `setting`, or (setting -1, or a custom
// message) the message itself, shortened. `app` is the Application name exceptions match.
void eval_add_finding(const struct policy_spec *s, const struct eval_input *in, const char *app,
                      struct eval_table *row, struct eval_result *out, const struct eval_finding *f,
                      int setting);
// Denies `subject` (of `kind`) because in->unreadable says the review cannot be read faithfully.
void eval_deny_unreadable(const char *kind, const cJSON *subject, const struct eval_input *in,
                          struct eval_result *out);
// Sets denied and the denial message from the findings.
void eval_conclude(const struct policy *p, struct eval_result *out);
// Appends a row to out->tables for `component` holding `table` (NULL: gone), settings "none".
struct eval_table *eval_add_table(struct eval_result *out, const char *component,
                                  const char *table);

#endif

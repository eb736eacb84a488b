// SPDX-License-Identifier: Apache-2.0
// The protection policy: loaded from YAML with libyaml, checked against a shape table, shared by
// reference count so a reload can swap it while requests finish on the one they started with.
//
// Ownership: policy_load* return a policy holding one reference; policy_ref adds one and
// policy_unref drops one (freeing at zero). The spec returned by policy_spec lives as long as the
// policy. policy_unref(NULL) is a no-op.
#ifndef TABLEGUARD_POLICY_H
#define TABLEGUARD_POLICY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "policy/diag.h"

enum policy_action { POLICY_DENY, POLICY_WARN, POLICY_AUDIT };

// The protection settings a trait carries, in the order of POLICY_SETTING_NAMES.
enum policy_setting { POLICY_DELETION_PROTECTION, POLICY_PITR, POLICY_SETTING_COUNT };

// Trait property names: "deletionProtection", "pointInTimeRecovery".
extern const char *const POLICY_SETTING_NAMES[POLICY_SETTING_COUNT];

// The placeholders a rule's message may hold, in the order of POLICY_PLACEHOLDER_NAMES.
enum policy_placeholder {
    POLICY_PH_APPLICATION,
    POLICY_PH_NAMESPACE,
    POLICY_PH_COMPONENT,
    POLICY_PH_TABLE,
    POLICY_PH_RULE,
    POLICY_PH_PATTERN,
    POLICY_PH_TRANSITION,
    POLICY_PLACEHOLDER_COUNT
};

// Their names without braces: "application", "namespace", ... ("{table}" in a message).
extern const char *const POLICY_PLACEHOLDER_NAMES[POLICY_PLACEHOLDER_COUNT];

// The transitions a `forbid` rule names, as bits of policy_rule.forbid.
enum policy_transition {
    POLICY_REMOVE = 1 << 0, // a component holding the table is gone, or its type changed
    POLICY_RENAME = 1 << 1, // its table name changed, or the table moved to another component
    POLICY_DELETE = 1 << 2, // the Application holding the table is deleted
};
#define POLICY_TRANSITION_COUNT 3

// "remove", "rename", "delete", indexed by bit position.
extern const char *const POLICY_TRANSITION_NAMES[POLICY_TRANSITION_COUNT];

// A list of fnmatch globs, matched case-insensitively. `compiled` (policy_globs_compile) holds
// the first characters a matching string can have, and a form of each glob that is matched
// without fnmatch when the glob is only literal ASCII characters and '*': most non-matching
// strings are rejected at their first character. NULL (a list built on the fly) matches every
// glob with fnmatch. The results are the same.
struct policy_glob;
struct policy_glob_set {
    uint64_t first[4];       // bit c: a string whose first byte is c may match (c 0: "")
    struct policy_glob *one; // per item, private to policy.c
};
struct policy_globs {
    char **items;
    size_t count;
    struct policy_glob_set *compiled; // or NULL
};

struct policy_rule {
    char *name;
    struct policy_globs tables;        // fnmatch globs on the table name, case-insensitive
    struct policy_globs namespaces;    // fnmatch globs on the namespace; ["*"] when not given
    int require[POLICY_SETTING_COUNT]; // -1: not required; 0 or 1: the value required
    unsigned forbid;                   // enum policy_transition bits; a rule has require or forbid
    enum policy_action action;
    char *message; // template, or NULL for the built-in message
};

// A per-environment profile (spec.profiles): which tables it covers and what /mutate gives them.
struct policy_profile {
    char *name;
    struct policy_globs tables;     // fnmatch globs on the table name, case-insensitive
    struct policy_globs namespaces; // globs on the namespace; ["*"] when not given
    // The values /mutate injects and fills: the profile's own, trait.defaults for a setting it
    // does not give; -1 for both when inject is false.
    int defaults[POLICY_SETTING_COUNT];
    bool inject; // false: the trait is not injected into this profile's tables
    bool retain; // ACK Tables of this profile get services.k8s.aws/deletion-policy: retain
};

// The default of spec.exceptionsMaxDays: how far ahead an exception may expire.
#define POLICY_EXCEPTIONS_MAX_DAYS 30
// A dotted path into an object, split at the dots: "spec.tableName" is {"spec", "tableName"}.
struct policy_path {
    char **segments;
    size_t depth;
    char *text; // the path as written
};

// A rendered object guarded directly (spec.resources): which kind, and where its table name and
// protection settings are. settings[] is indexed by enum policy_setting.
struct policy_resource {
    char *api_version; // "group/version", compared exactly with the object's apiVersion
    char *kind;
    struct policy_path table_name;                     // tableNameFrom
    struct policy_path settings[POLICY_SETTING_COUNT]; // deletionProtectionFrom, ...
};

struct kinds_row; // policy/kinds.h

// The policy as callers read it: every default filled in.
struct policy_spec {
    char *name;
    struct policy_globs component_types;
    char **table_name_path; // dotted path under the component, e.g. {"properties","tableName"}
    size_t table_name_depth;
    char *table_name_from; // the same path as written
    char *trait_type;
    bool defaults[POLICY_SETTING_COUNT];
    struct policy_globs exclude_namespaces, exclude_users, exclude_groups;
    struct policy_rule *rules;
    size_t rule_count;
    struct policy_profile *profiles; // spec.profiles in file order; the first match wins
    size_t profile_count;
    // The profiles a table may match, by the table's first byte c, so that a lookup tries only
    // those: profile_first[profile_first_at[c] .. profile_first_at[c + 1]) (in file order), and
    // profile_anywhere (those with a glob that may match any first byte). Set whenever
    // profile_count is not 0.
    size_t *profile_first_at, *profile_first, *profile_anywhere, profile_anywhere_count;
    unsigned exceptions_max_days;      // spec.exceptionsMaxDays
    struct policy_resource *resources; // spec.resources, in file order; none: Applications only
    size_t resource_count;
    struct kinds_row *resource_rows; // the same rows as policy/kinds.h reads them (kinds_find)
};

struct policy;

// Loads a policy document from a buffer; `file` names it in diagnostics. On any error returns
// NULL and adds every problem found (one pass) to `diags` as "file:line:col: message".
struct policy *policy_load_buffer(const char *buf, size_t len, const char *file,
                                  struct diag *diags);

// Reads the file at `path` (at most 4 MiB) into a malloc'd buffer the caller frees; NULL with a
// diagnostic when it cannot.
char *policy_read_file(const char *path, size_t *len, struct diag *diags);

// Reads and loads the file at `path`.
struct policy *policy_load_file(const char *path, struct diag *diags);

struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

const struct policy_spec *policy_spec(const struct policy *p);
// Lower-case hex SHA-256 of the policy file's bytes (64 characters).
const char *policy_sha256(const struct policy *p);
// The same digest of any buffer, written to out (65 bytes with the NUL).
void policy_digest(const char *buf, size_t len, char out[65]);
const char *policy_action_name(enum policy_action a);

// The first profile whose tables and namespaces globs match `table` in namespace `ns` ("" when
// none), or NULL: such a table gets trait.defaults. Borrowed from the spec.
const struct policy_profile *policy_profile_for(const struct policy_spec *s, const char *table,
                                                const char *ns);
// The spec.resources row that guards objects of this apiVersion and kind, or NULL.
const struct policy_resource *policy_resource_for(const struct policy_spec *s,
                                                  const char *api_version, const char *kind);

// The value at `path` under `obj` (borrowed from it), or NULL when a step is missing or is not
// an object: every reader of a policy path walks it the same way.
const cJSON *policy_path_get(const struct policy_path *path, const cJSON *obj);

// Case-insensitive glob match of `s` against any of `g`: fnmatch(glob, s, FNM_CASEFOLD) in the C
// locale, through the compiled form where there is one.
bool policy_globs_match(const struct policy_globs *g, const char *s);
// The same for s of n bytes (n == strlen(s)), for a caller that tries one string on many lists.
bool policy_globs_match_len(const struct policy_globs *g, const char *s, size_t n);

// The first glob of g (its text, in g) that matches s, or NULL; and the same for s of n bytes.
const char *policy_globs_first(const struct policy_globs *g, const char *s);
const char *policy_globs_first_len(const struct policy_globs *g, const char *s, size_t n);

// False when no glob of g can match s, by s's first byte alone (a compiled list); true when one
// may. Inline, so that a scan of many lists (profiles, exceptions) passes most at one compare.
static inline bool
policy_globs_may_match(const struct policy_globs *g, const char *s)
{
    unsigned char c = (unsigned char)s[0];
    return g->compiled == NULL || (g->compiled->first[c >> 6] & (uint64_t)1 << (c & 63)) != 0;
}

// Builds g->compiled for g's items (call again after changing them). Every glob a policy or an
// exceptions file loads is compiled.
void policy_globs_compile(struct policy_globs *g);

// Writes the normalised policy, defaults filled in, as YAML.
void policy_print(const struct policy *p, FILE *out);

// ---- Sibling documents ------------------------------------------------------------------------
// Other tableguard documents (the exceptions file) load through the same libyaml loader, with the
// same shape checks, budget and "file:line:col: message" diagnostics. Nodes are libyaml's.
struct yaml_node_s;
struct policy_yaml; // a document being loaded

enum policy_yaml_type {
    POLICY_YAML_STR,
    POLICY_YAML_BOOL,
    POLICY_YAML_STRLIST,
    POLICY_YAML_MAP,
    POLICY_YAML_MAPLIST,
    POLICY_YAML_ANYMAP,
    POLICY_YAML_UINT,
};

// One allowed key of a mapping (at most 16 per mapping).
struct policy_yaml_field {
    const char *key;
    enum policy_yaml_type type;
    bool required;
};

// Called with the document's root, or NULL when the document is empty.
typedef void (*policy_yaml_root_fn)(struct policy_yaml *y, const struct yaml_node_s *root,
                                    void *arg);

// Parses one YAML document from a buffer and calls fn on its root; `what` ("exceptions") names the
// document in diagnostics. Returns 0, or -1 when any diagnostic was added (every one, sorted).
int policy_yaml_load(const char *buf, size_t len, const char *file, const char *what,
                     struct diag *diags, policy_yaml_root_fn fn, void *arg);
// Adds an error at node n (at 1:1 when n is NULL); control characters are escaped.
void policy_yaml_error(struct policy_yaml *y, const struct yaml_node_s *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// Checks a mapping against its keys: unknown (with a suggestion), duplicate, mistyped and missing
// keys are reported; found[i] receives the value of fields[i] when it has the right type.
void policy_yaml_check_map(struct policy_yaml *y, const struct yaml_node_s *map, const char *what,
                           const struct policy_yaml_field *fields, size_t n,
                           const struct yaml_node_s **found);
// Item i of a sequence, or NULL past its end (or past the walking budget).
const struct yaml_node_s *policy_yaml_item(struct policy_yaml *y, const struct yaml_node_s *seq,
                                           size_t i);
// A scalar's text, or NULL for another node.
const char *policy_yaml_scalar(const struct yaml_node_s *n);
// A checked boolean's value (false when n is NULL).
bool policy_yaml_bool(const struct yaml_node_s *n);
// A checked list of strings as globs; a glob that cannot mean what was meant is reported.
struct policy_globs policy_yaml_globs(struct policy_yaml *y, const struct yaml_node_s *seq,
                                      const char *what);
// Writes `kind "NAME"` for a list entry with a name into what (left alone otherwise).
void policy_yaml_label(struct policy_yaml *y, const struct yaml_node_s *map, const char *kind,
                       char *what, size_t len);
// Reports every entry whose name an earlier one has; names[i] is written at nodes[i].
void policy_yaml_duplicates(struct policy_yaml *y, const char *kind, const char *const *names,
                            const struct yaml_node_s *const *nodes, size_t n);
// The closest of names to word within two edits (or differing in case only), or NULL.
const char *policy_suggest(const char *word, const char *const *names, size_t n);
void policy_globs_free(struct policy_globs *g);

#endif

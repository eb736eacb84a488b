// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy/policy: loading, defaults, diagnostics, globs, templates, printing and
// reference counting, on buffers.
#include <fnmatch.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"
#include "util/xalloc.h"

#define HEAD "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\nmetadata: {name: t}\n"

static struct policy *
load_ok(const char *yaml)
{
    struct diag d = {0};
    struct policy *p = policy_load_buffer(yaml, strlen(yaml), "p.yaml", &d);
    for (size_t i = 0; i < d.count; i++) {
        char *line = diag_format(&d.items[i]);
        print_message("unexpected: %s\n", line);
        free(line);
    }
    assert_non_null(p);
    assert_int_equal(d.count, 0);
    diag_free(&d);
    return p;
}

// Loads a policy that must fail and returns its diagnostics joined by newlines (caller frees).
static char *
load_fail(const char *yaml, size_t *count)
{
    struct diag d = {0};
    struct policy *p = policy_load_buffer(yaml, strlen(yaml), "p.yaml", &d);
    assert_null(p);
    assert_true(d.count > 0);
    char *all = xstrdup("");
    for (size_t i = 0; i < d.count; i++) {
        char *line = diag_format(&d.items[i]);
        char *next = xasprintf("%s%s\n", all, line);
        free(line);
        free(all);
        all = next;
    }
    if (count != NULL)
        *count = d.count;
    diag_free(&d);
    return all;
}

static void
assert_diag(const char *yaml, const char *expected)
{
    char *got = load_fail(yaml, NULL);
    if (strstr(got, expected) == NULL)
        fail_msg("expected \"%s\" in:\n%s", expected, got);
    free(got);
}

static void
test_defaults_fill_a_minimal_policy(void **state)
{
    (void)state;
    struct policy *p = load_ok(HEAD "spec: {}\n");
    const struct policy_spec *s = policy_spec(p);
    assert_string_equal(s->name, "t");
    assert_int_equal(s->component_types.count, 1);
    assert_string_equal(s->component_types.items[0], "aws-dynamodb-kro");
    assert_string_equal(s->table_name_from, "properties.tableName");
    assert_int_equal(s->table_name_depth, 2);
    assert_string_equal(s->table_name_path[1], "tableName");
    assert_string_equal(s->trait_type, "dynamodb-protection-kro");
    assert_true(s->defaults[POLICY_DELETION_PROTECTION]);
    assert_true(s->defaults[POLICY_PITR]);
    assert_int_equal(s->exclude_namespaces.count, 0);
    assert_int_equal(s->rule_count, 0);
    assert_int_equal(strlen(policy_sha256(p)), 64);
    policy_unref(p);
}

static void
test_rule_defaults_and_explicit_values(void **state)
{
    (void)state;
    struct policy *p = load_ok(HEAD "spec:\n"
                                    "  components: {types: [a, 'b-*'], tableNameFrom: spec.x.y}\n"
                                    "  trait: {type: t, defaults: {pointInTimeRecovery: false}}\n"
                                    "  rules:\n"
                                    "    - name: r1\n"
                                    "      tables: ['*-prod']\n"
                                    "      require: {deletionProtection: true}\n"
                                    "    - name: r2\n"
                                    "      tables: [x]\n"
                                    "      namespaces: [team-*]\n"
                                    "      require: {pointInTimeRecovery: false}\n"
                                    "      action: audit\n"
                                    "      message: '{rule} {table}'\n");
    const struct policy_spec *s = policy_spec(p);
    assert_int_equal(s->component_types.count, 2);
    assert_int_equal(s->table_name_depth, 3);
    assert_string_equal(s->trait_type, "t");
    assert_true(s->defaults[POLICY_DELETION_PROTECTION]);
    assert_false(s->defaults[POLICY_PITR]);
    assert_int_equal(s->rule_count, 2);
    const struct policy_rule *r1 = &s->rules[0], *r2 = &s->rules[1];
    assert_int_equal(r1->action, POLICY_DENY);
    assert_int_equal(r1->namespaces.count, 1);
    assert_string_equal(r1->namespaces.items[0], "*");
    assert_int_equal(r1->require[POLICY_DELETION_PROTECTION], 1);
    assert_int_equal(r1->require[POLICY_PITR], -1);
    assert_null(r1->message);
    assert_int_equal(r2->action, POLICY_AUDIT);
    assert_int_equal(r2->require[POLICY_PITR], 0);
    assert_string_equal(r2->message, "{rule} {table}");
    assert_string_equal(policy_action_name(r2->action), "audit");
    policy_unref(p);
}

// Random strings over an alphabet (a small deterministic generator: the test is the same at
// every run).
static unsigned long glob_rng = 12345;

static void
random_text(char *out, size_t max, const char *alphabet)
{
    size_t n = strlen(alphabet), len;
    glob_rng = glob_rng * 6364136223846793005ul + 1442695040888963407ul;
    len = (glob_rng >> 33) % max;
    for (size_t i = 0; i < len; i++) {
        glob_rng = glob_rng * 6364136223846793005ul + 1442695040888963407ul;
        out[i] = alphabet[(glob_rng >> 33) % n];
    }
    out[len] = '\0';
}

// Compiled globs match exactly what fnmatch(FNM_CASEFOLD) matches: star-only globs (the
// compiled path), globs with '?', brackets and escapes (fnmatch's), against strings with the
// same letters in either case, stars, dashes and bytes past ASCII.
static void
test_compiled_globs_match_as_fnmatch(void **state)
{
    (void)state;
    static const char *const fixed[] = {
        "*",     "**", "*-prod", "orders-*", "ORDERS-*-Prod",  "a*b*c", "*ab*ab*",
        "exact", "",   "*a",     "a*",       "ledger-5-*-prod"};
    char pat[16], str[16];
    size_t matched = 0;
    for (int round = 0; round < 40000; round++) {
        if (round < 12 * 16)
            snprintf(pat, sizeof pat, "%s", fixed[round % 12]);
        else
            random_text(pat, round % 3 ? 9 : 6, round % 5 ? "aAbB-*" : "aB*?[]\\-\xc3\xa9");
        random_text(str, 10, "aAbB-*\xc3\xa9");
        struct policy_globs g = {xcalloc(1, sizeof(char *)), 1, NULL};
        g.items[0] = xstrdup(pat);
        bool want = fnmatch(pat, str, FNM_CASEFOLD) == 0;
        assert_int_equal(policy_globs_match(&g, str), want);
        policy_globs_compile(&g);
        if (policy_globs_match(&g, str) != want)
            fail_msg("glob \"%s\" on \"%s\": compiled %d, fnmatch %d", pat, str, !want, want);
        matched += want;
        policy_globs_free(&g);
    }
    assert_true(matched > 1000); // the strings do meet the globs

    // A list gives the first of its globs that matches, in its order, as a loop over fnmatch.
    for (int round = 0; round < 5000; round++) {
        struct policy_globs g = {xcalloc(3, sizeof(char *)), 3, NULL};
        for (int k = 0; k < 3; k++) {
            random_text(pat, 6, round % 5 ? "aAbB-*" : "aB*?[]\\-");
            g.items[k] = xstrdup(pat);
        }
        random_text(str, 8, "aAbB-");
        const char *want = NULL;
        for (int k = 0; k < 3 && want == NULL; k++)
            if (fnmatch(g.items[k], str, FNM_CASEFOLD) == 0)
                want = g.items[k];
        assert_ptr_equal(policy_globs_first(&g, str), want);
        policy_globs_compile(&g);
        assert_ptr_equal(policy_globs_first(&g, str), want);
        assert_int_equal(policy_globs_match(&g, str), want != NULL);
        policy_globs_free(&g);
    }
}

static void
test_globs_are_case_insensitive_fnmatch(void **state)
{
    (void)state;
    char *items[] = {"*-prod", "db-[0-9]", "exact"};
    struct policy_globs g = {items, 3, NULL};
    assert_true(policy_globs_match(&g, "orders-prod"));
    assert_true(policy_globs_match(&g, "ORDERS-PROD"));
    assert_true(policy_globs_match(&g, "db-7"));
    assert_true(policy_globs_match(&g, "Exact"));
    assert_false(policy_globs_match(&g, "orders-prod-2"));
    assert_false(policy_globs_match(&g, "db-x"));
    struct policy_globs none = {NULL, 0, NULL};
    assert_false(policy_globs_match(&none, "anything"));
}

static void
test_unknown_key_suggests_and_is_not_also_missing(void **state)
{
    (void)state;
    size_t n;
    char *got = load_fail(HEAD "spec:\n  rules:\n    - name: r\n      tabels: [x]\n"
                               "      require: {deletionProtection: true}\n",
                          &n);
    assert_string_equal(
        got, "p.yaml:7:7: rule \"r\": unknown key \"tabels\" (did you mean \"tables\"?)\n");
    assert_int_equal(n, 1);
    free(got);
    assert_diag(HEAD "spec: {colour: red}\n",
                "p.yaml:4:8: spec: unknown key \"colour\" (expected components, trait, exclude, "
                "rules, profiles, exceptionsMaxDays or resources)");
    assert_diag(HEAD "spec: {Rules: []}\n", "unknown key \"Rules\" (did you mean \"rules\"?)");
}

static void
test_wrong_types_say_what_was_expected(void **state)
{
    (void)state;
    assert_diag(HEAD "spec: {trait: {defaults: {deletionProtection: 'true'}}}\n",
                "trait defaults: \"deletionProtection\" must be a boolean (true or false), got the "
                "quoted string \"true\" (remove the quotes)");
    assert_diag(HEAD "spec: {trait: {defaults: {pointInTimeRecovery: off}}}\n",
                "got \"off\" (yes/no/on/off are strings in YAML 1.2: write true or false)");
    assert_diag(HEAD "spec: {exclude: {namespaces: kube-system}}\n",
                "exclude: \"namespaces\" must be a list of strings, got \"kube-system\" (write a "
                "list: [\"...\"])");
    assert_diag(HEAD "spec: {rules: {name: x}}\n",
                "spec: \"rules\" must be a list of mappings, got a mapping");
    assert_diag(HEAD "spec: {exclude: {users: [a, [b]]}}\n",
                "exclude: \"users\" item 2 must be a string, got a list");
    assert_diag(HEAD "spec: {trait: {type: ~}}\n", "trait: \"type\" must be a string, got null");
    assert_diag(HEAD "spec: []\n", "policy: \"spec\" must be a mapping, got a list");
}

static void
test_semantic_checks(void **state)
{
    (void)state;
    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [x], require: {deletionProtection: "
                     "true}, action: block}\n",
                "rule \"r\": unknown action \"block\" (expected deny, warn or audit)");
    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [x], require: {deletionProtection: "
                     "true}, action: WARN}\n",
                "(expected deny, warn or audit; did you mean \"warn\"?)");
    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [x], require: {}}\n",
                "rule \"r\": \"require\" names nothing to require");
    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [], require: {deletionProtection: "
                     "true}}\n",
                "\"tables\" must name at least one pattern");
    assert_diag(HEAD "spec:\n  rules:\n"
                     "    - {name: r, tables: [x], require: {deletionProtection: true}}\n"
                     "    - {name: r, tables: [y], require: {deletionProtection: true}}\n",
                "p.yaml:7:7: rule \"r\": duplicate rule name (rule names must be unique)");
    assert_diag(HEAD "spec: {exclude: {namespaces: ['a[bc']}}\n",
                "exclude: pattern \"a[bc\" has an unclosed \"[\"");
    assert_diag(HEAD "spec: {components: {tableNameFrom: 'properties..x'}}\n",
                "has an empty path segment");
    assert_diag(HEAD "spec: {}\n---\n" HEAD "spec: {}\n", "a second YAML document");
    assert_diag("apiVersion: tableguard.io/v1\nkind: Policy\nmetadata: {name: x}\nspec: {}\n",
                "p.yaml:2:7: policy: unsupported kind \"Policy\" (expected \"ProtectionPolicy\")");
    assert_diag("apiVersion: v1\nkind: ProtectionPolicy\nmetadata: {name: x}\nspec: {}\n",
                "p.yaml:1:13: policy: unsupported apiVersion \"v1\"");
    assert_diag("kind: ProtectionPolicy\nmetadata: {}\n",
                "policy: missing required key \"apiVersion\"");
    assert_diag("kind: ProtectionPolicy\nmetadata: {}\n",
                "metadata: missing required key \"name\"");
}

static void
test_templates(void **state)
{
    (void)state;
    struct policy *p = load_ok(
        HEAD "spec:\n  rules:\n    - name: r\n      tables: [x]\n"
             "      require: {deletionProtection: true}\n"
             "      message: '{application} {namespace} {component} {table} {rule} {pattern}'\n");
    policy_unref(p);
    assert_diag(HEAD "spec:\n  rules:\n    - name: r\n      tables: [x]\n"
                     "      require: {deletionProtection: true}\n      message: 'see {tabel}'\n",
                "p.yaml:9:16: rule \"r\": unknown placeholder \"{tabel}\" in message");
    assert_diag(HEAD "spec:\n  rules:\n    - name: r\n      tables: [x]\n"
                     "      require: {deletionProtection: true}\n      message: 'see {table'\n",
                "unclosed \"{\" in message");
}

static void
test_empty_and_syntax_errors(void **state)
{
    (void)state;
    char *got = load_fail("", NULL);
    assert_true(strncmp(got, "p.yaml:1:1: empty policy file", 29) == 0);
    free(got);
    got = load_fail("# only a comment\n", NULL);
    assert_non_null(strstr(got, "empty policy file"));
    free(got);
    assert_diag("a: [b\n", "p.yaml:2:1: YAML syntax error: did not find expected ',' or ']' "
                           "(while parsing a flow sequence that starts at line 1, column 4)");
    assert_diag("a: b: c\n", "YAML syntax error: mapping values are not allowed in this context");
}

static void
test_every_error_in_one_pass_in_file_order(void **state)
{
    (void)state;
    size_t n;
    char *got = load_fail("apiVersion: x\n"
                          "kind: ProtectionPolicy\n"
                          "metadata: {name: t, owner: me}\n"
                          "spec:\n"
                          "  rules:\n"
                          "    - {name: r, tables: x, require: {deletionProtection: 1}}\n"
                          "    - 7\n"
                          "  trait: {typo: x}\n",
                          &n);
    assert_int_equal(n, 6);
    const char *order[] = {"p.yaml:1:13:", "p.yaml:3:21:", "p.yaml:6:25:",
                           "p.yaml:6:58:", "p.yaml:7:7:",  "p.yaml:8:11:"};
    const char *at = got;
    for (size_t i = 0; i < 6; i++) {
        const char *found = strstr(at, order[i]);
        if (found == NULL)
            fail_msg("expected %s after position %zu in:\n%s", order[i], (size_t)(at - got), got);
        at = found;
    }
    free(got);
}

// The loader composes libyaml's events itself (one pass for the limits and the document): an
// alias is the node its anchor names, and alias errors read as libyaml's own loader gives them.
static void
test_anchors_and_aliases(void **state)
{
    (void)state;
    struct policy *p =
        load_ok(HEAD "spec:\n  rules:\n"
                     "    - name: a\n      tables: &t ['*-prod', orders]\n"
                     "      namespaces: &ns [shop-*]\n"
                     "      require: &req {deletionProtection: true}\n"
                     "    - {name: b, tables: *t, namespaces: *ns, require: *req}\n");
    const struct policy_spec *s = policy_spec(p);
    assert_int_equal(s->rule_count, 2);
    const struct policy_rule *b = &s->rules[1];
    assert_int_equal(b->tables.count, 2);
    assert_string_equal(b->tables.items[0], "*-prod");
    assert_string_equal(b->tables.items[1], "orders");
    assert_string_equal(b->namespaces.items[0], "shop-*");
    assert_int_equal(b->require[POLICY_DELETION_PROTECTION], 1);
    policy_unref(p);
    assert_diag(HEAD "spec:\n  rules:\n    - {name: &n a, tables: &n [x]}\n",
                "p.yaml:6:28: YAML syntax error: second occurrence (found duplicate anchor; first "
                "occurrence that starts at line 6, column 14)");
    assert_diag(HEAD "spec:\n  rules:\n    - {name: a, tables: *t}\n",
                "p.yaml:6:25: YAML syntax error: found undefined alias");
    // Many anchors, each aliased once in reverse order: every alias finds its own node.
    enum { ANCHORS = 300 };
    size_t cap = 64 * ANCHORS + 512, len = 0;
    char *yaml = xmalloc(cap);
    len += (size_t)snprintf(yaml + len, cap - len, HEAD "spec:\n  rules:\n");
    for (int i = 0; i < ANCHORS; i++)
        len +=
            (size_t)snprintf(yaml + len, cap - len,
                             "    - {name: r%d, tables: [&t%d t%d], forbid: [delete]}\n", i, i, i);
    len += (size_t)snprintf(yaml + len, cap - len, "    - {name: all, forbid: [delete], tables: [");
    for (int i = ANCHORS - 1; i >= 0; i--)
        len += (size_t)snprintf(yaml + len, cap - len, "*t%d%s", i, i ? ", " : "]}\n");
    p = load_ok(yaml);
    const struct policy_rule *all = &policy_spec(p)->rules[ANCHORS];
    assert_int_equal(all->tables.count, ANCHORS);
    for (int i = 0; i < ANCHORS; i++) {
        char want[16];
        snprintf(want, sizeof want, "t%d", ANCHORS - 1 - i);
        assert_string_equal(all->tables.items[i], want);
    }
    policy_unref(p);
    free(yaml);
    // The limits are checked over the whole stream before anything else is reported.
    size_t n;
    char *got = load_fail("a: *x\n---\n"
                          "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
                          &n);
    assert_int_equal(n, 1);
    assert_string_equal(got, "p.yaml:3:65: policy: nested deeper than 64 levels; a policy needs a "
                             "handful\n");
    free(got);
}

// A valid policy whose one rule, anchored, is aliased 2000 times, each copy with the same
// 1000 tables: the loader would walk two million table nodes for a document of about a
// thousand. The walk stops at its budget and says so, instead of expanding the graph.
static void
test_alias_bomb_is_bounded(void **state)
{
    (void)state;
    const size_t tables = 1000, copies = 2000;
    size_t cap = 4096 + tables * 8 + copies * 8, len;
    char *yaml = xmalloc(cap);
    len = (size_t)snprintf(yaml, cap,
                           HEAD "spec:\n"
                                "  rules:\n"
                                "  - &r\n"
                                "    name: r\n"
                                "    require: {deletionProtection: true}\n"
                                "    tables: [");
    for (size_t i = 0; i < tables; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "%st%zu", i ? "," : "", i);
    len += (size_t)snprintf(yaml + len, cap - len, "]\n");
    for (size_t i = 0; i < copies; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "  - *r\n");
    size_t count = 0;
    char *got = load_fail(yaml, &count);
    if (strstr(got, "p.yaml:1:1: policy: too many nodes after expanding aliases (limit ") == NULL)
        fail_msg("expected the alias budget's diagnostic, got:\n%s", got);
    free(got);
    free(yaml);
}

// policy_print's output, malloc'd.
static char *
printed(const struct policy *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    policy_print(p, f);
    fclose(f);
    return buf;
}

static void
test_print_normalises_and_round_trips(void **state)
{
    (void)state;
    struct policy *p = load_ok(HEAD "spec:\n  exclude: {users: ['ci\"bot']}\n"
                                    "  rules:\n    - name: r\n      tables: ['*-prod']\n"
                                    "      require: {pointInTimeRecovery: true}\n"
                                    "      action: warn\n      message: 'a\\b {rule}'\n");
    char *buf = printed(p);
    assert_non_null(strstr(buf, "    namespaces: []\n"));
    assert_non_null(strstr(buf, "      namespaces: [\"*\"]\n"));
    assert_non_null(strstr(buf, "    users: [\"ci\\\"bot\"]\n"));
    assert_non_null(strstr(buf, "      action: warn\n"));
    assert_non_null(strstr(buf, "pointInTimeRecovery: true\n"));
    struct policy *again = load_ok(buf);
    const struct policy_spec *s = policy_spec(again);
    assert_string_equal(s->exclude_users.items[0], "ci\"bot");
    assert_string_equal(s->rules[0].message, "a\\b {rule}");
    assert_int_equal(s->rules[0].action, POLICY_WARN);
    free(buf);
    policy_unref(again);
    policy_unref(p);
}

#define PROFILES                                                                                   \
    "spec:\n  trait: {defaults: {deletionProtection: true, pointInTimeRecovery: false}}\n"         \
    "  profiles:\n"                                                                                \
    "    - {name: production, tables: ['*-prod'], retain: true,\n"                                 \
    "       defaults: {deletionProtection: true, pointInTimeRecovery: true}}\n"                    \
    "    - {name: staging, tables: ['*-staging'], namespaces: [shop-*],\n"                         \
    "       defaults: {pointInTimeRecovery: false}}\n"                                             \
    "    - {name: development, tables: ['*-dev', '*-test'], inject: false}\n"                      \
    "    - {name: shadow, tables: ['*-prod']}\n"

static void
test_profiles_load_and_the_first_match_wins(void **state)
{
    (void)state;
    struct policy *p = load_ok(HEAD PROFILES);
    const struct policy_spec *s = policy_spec(p);
    assert_int_equal(s->profile_count, 4);
    assert_int_equal(s->exceptions_max_days, POLICY_EXCEPTIONS_MAX_DAYS);
    const struct policy_profile *prod = policy_profile_for(s, "Orders-PROD", "shop");
    assert_non_null(prod);
    assert_string_equal(prod->name, "production"); // not "shadow", which comes later
    assert_true(prod->inject);
    assert_true(prod->retain);
    assert_int_equal(prod->defaults[POLICY_DELETION_PROTECTION], 1);
    assert_int_equal(prod->defaults[POLICY_PITR], 1);
    assert_int_equal(prod->namespaces.count, 1);
    assert_string_equal(prod->namespaces.items[0], "*");

    // A setting the profile does not give comes from trait.defaults.
    const struct policy_profile *stg = policy_profile_for(s, "users-staging", "shop-eu");
    assert_non_null(stg);
    assert_string_equal(stg->name, "staging");
    assert_false(stg->retain);
    assert_int_equal(stg->defaults[POLICY_DELETION_PROTECTION], 1);
    assert_int_equal(stg->defaults[POLICY_PITR], 0);
    // Its namespaces globs bound it: elsewhere a staging table matches no profile.
    assert_null(policy_profile_for(s, "users-staging", "billing"));
    assert_null(policy_profile_for(s, "users-staging", NULL));

    const struct policy_profile *dev = policy_profile_for(s, "cart-test", "");
    assert_non_null(dev);
    assert_false(dev->inject);
    assert_int_equal(dev->defaults[POLICY_DELETION_PROTECTION], -1);
    assert_int_equal(dev->defaults[POLICY_PITR], -1);
    assert_null(policy_profile_for(s, "orders-prod-kro", "shop"));
    policy_unref(p);

    // A policy without profiles has none, and every lookup says so.
    p = load_ok(HEAD "spec: {exceptionsMaxDays: 7}\n");
    assert_int_equal(policy_spec(p)->profile_count, 0);
    assert_int_equal(policy_spec(p)->exceptions_max_days, 7);
    assert_null(policy_profile_for(policy_spec(p), "orders-prod", "shop"));
    policy_unref(p);
}

// The lookup tries only the profiles a table's first byte allows (and those whose globs may start
// anywhere), merged in file order: it gives what a scan of every profile in order gives, for
// random profiles (globs starting with a letter in either case, with '*', or with '?') against
// random tables and namespaces.
static void
test_profile_lookup_is_the_first_match_in_file_order(void **state)
{
    (void)state;
    static const char *const starts[] = {"a", "A", "b", "*", "?", "-"};
    size_t compared = 0, found = 0;
    for (int round = 0; round < 300; round++) {
        char *yaml = xstrdup(HEAD "spec:\n  profiles:\n");
        for (int i = 0; i < 12; i++) {
            char g1[16], g2[16], rest[8];
            random_text(rest, 4, "ab-");
            snprintf(g1, sizeof g1, "%s%s*", starts[(glob_rng >> 40) % 6], rest);
            random_text(rest, 4, "aB-");
            snprintf(g2, sizeof g2, "%s%s", starts[(glob_rng >> 41) % 6], rest);
            char *more = xasprintf("%s    - {name: p%d, tables: ['%s', '%s']%s}\n", yaml, i, g1, g2,
                                   i % 3 == 0 ? ", namespaces: [shop-*]" : "");
            free(yaml);
            yaml = more;
        }
        struct diag d = {0};
        struct policy *p = policy_load_buffer(yaml, strlen(yaml), "p.yaml", &d);
        diag_free(&d);
        free(yaml);
        if (p == NULL)
            continue;
        const struct policy_spec *s = policy_spec(p);
        for (int t = 0; t < 50; t++) {
            char table[12];
            random_text(table, 8, "aAbB-");
            const char *ns = t % 2 ? "shop-eu" : "billing";
            const struct policy_profile *want = NULL;
            for (size_t i = 0; i < s->profile_count && want == NULL; i++)
                if (policy_globs_match(&s->profiles[i].tables, table) &&
                    policy_globs_match(&s->profiles[i].namespaces, ns))
                    want = &s->profiles[i];
            assert_ptr_equal(policy_profile_for(s, table, ns), want);
            compared++;
            found += want != NULL;
        }
        policy_unref(p);
    }
    assert_true(compared > 5000);
    assert_true(found > 1000 && found < compared); // both outcomes are met
}

static void
test_profile_diagnostics(void **state)
{
    (void)state;
    assert_diag(HEAD "spec:\n  profiles:\n    - {name: dev, tables: ['*-dev'], inject: false,\n"
                     "       defaults: {deletionProtection: false}}\n",
                "p.yaml:7:18: profile \"dev\": \"defaults\" with \"inject: false\" has no effect");
    assert_diag(HEAD "spec:\n  profiles:\n    - {name: a, tables: [x]}\n    - {name: a, tables: "
                     "[y]}\n",
                "p.yaml:7:7: profile \"a\": duplicate profile name (profile names must be unique)");
    assert_diag(HEAD "spec:\n  profiles:\n    - {name: a, tabels: [x]}\n",
                "p.yaml:6:17: profile \"a\": unknown key \"tabels\" (did you mean \"tables\"?)");
    assert_diag(HEAD "spec:\n  profiles:\n    - {tables: [x]}\n",
                "p.yaml:6:7: profiles[0]: missing required key \"name\"");
    assert_diag(HEAD "spec:\n  profiles:\n    - {name: a, tables: []}\n",
                "profile \"a\": \"tables\" must name at least one pattern");
    assert_diag(HEAD "spec:\n  profiles:\n    - {name: a, tables: ['[x'], inject: no}\n",
                "profile \"a\": pattern \"[x\" has an unclosed \"[\"");
    assert_diag(
        HEAD "spec:\n  profiles:\n    - {name: a, tables: [x], inject: no}\n",
        "profile \"a\": \"inject\" must be a boolean (true or false), got \"no\" (yes/no/on/off");
    assert_diag(HEAD "spec:\n  profiles:\n    - {name: a, tables: [x], defaults: {pitr: true}}\n",
                "profile \"a\" defaults: unknown key \"pitr\"");
    assert_diag(HEAD "spec: {exceptionsMaxDays: 0}\n",
                "p.yaml:4:27: spec: \"exceptionsMaxDays\" must be between 1 and 3660, got 0");
    assert_diag(HEAD "spec: {exceptionsMaxDays: '30'}\n",
                "spec: \"exceptionsMaxDays\" must be a whole number, got the quoted string \"30\"");
    assert_diag(HEAD "spec: {exceptionsMaxDays: -3}\n",
                "spec: \"exceptionsMaxDays\" must be a whole number, got \"-3\"");
}

static void
test_profiles_print_and_round_trip(void **state)
{
    (void)state;
    struct policy *p = load_ok(HEAD PROFILES);
    char *buf = printed(p);
    assert_non_null(strstr(buf, "  profiles:\n    - name: \"production\"\n"));
    assert_non_null(strstr(buf, "      inject: false\n      retain: false\n"));
    struct policy *again = load_ok(buf);
    const struct policy_spec *a = policy_spec(again), *s = policy_spec(p);
    assert_int_equal(a->profile_count, s->profile_count);
    for (size_t i = 0; i < s->profile_count; i++) {
        assert_string_equal(a->profiles[i].name, s->profiles[i].name);
        assert_memory_equal(a->profiles[i].defaults, s->profiles[i].defaults,
                            sizeof s->profiles[i].defaults);
        assert_int_equal(a->profiles[i].inject, s->profiles[i].inject);
        assert_int_equal(a->profiles[i].retain, s->profiles[i].retain);
    }
    free(buf);
    policy_unref(again);
    policy_unref(p);
}

#define TWO_ROWS                                                                                   \
    "  resources:\n"                                                                               \
    "    - apiVersion: dynamodb.services.k8s.aws/v1alpha1\n"                                       \
    "      kind: Table\n"                                                                          \
    "      tableNameFrom: spec.tableName\n"                                                        \
    "      deletionProtectionFrom: spec.deletionProtectionEnabled\n"                               \
    "      pointInTimeRecoveryFrom: spec.continuousBackups.pointInTimeRecoveryEnabled\n"           \
    "    - apiVersion: kro.run/v1alpha1\n"                                                         \
    "      kind: DynamoDBTable\n"                                                                  \
    "      tableNameFrom: spec.tableName\n"                                                        \
    "      deletionProtectionFrom: spec.deletionProtectionEnabled\n"                               \
    "      pointInTimeRecoveryFrom: spec.pointInTimeRecoveryEnabled\n"

static void
test_resources_load_look_up_and_read_paths(void **state)
{
    (void)state;
    struct policy *none = load_ok(HEAD "spec: {}\n");
    assert_int_equal(policy_spec(none)->resource_count, 0);
    assert_null(policy_resource_for(policy_spec(none), "kro.run/v1alpha1", "DynamoDBTable"));
    policy_unref(none);

    struct policy *p = load_ok(HEAD "spec:\n" TWO_ROWS);
    const struct policy_spec *s = policy_spec(p);
    assert_int_equal(s->resource_count, 2);
    const struct policy_resource *t =
        policy_resource_for(s, "dynamodb.services.k8s.aws/v1alpha1", "Table");
    assert_ptr_equal(t, &s->resources[0]);
    assert_int_equal(t->settings[POLICY_PITR].depth, 3);
    assert_string_equal(t->settings[POLICY_PITR].segments[1], "continuousBackups");
    assert_string_equal(t->table_name.text, "spec.tableName");
    assert_ptr_equal(policy_resource_for(s, "kro.run/v1alpha1", "DynamoDBTable"), &s->resources[1]);
    // Exact matches only: another version, another group or another case is not guarded.
    assert_null(policy_resource_for(s, "kro.run/v1alpha2", "DynamoDBTable"));
    assert_null(policy_resource_for(s, "kro.run/v1alpha1", "dynamodbtable"));
    assert_null(policy_resource_for(s, NULL, "Table"));

    cJSON *obj = cJSON_Parse("{\"spec\":{\"tableName\":\"a-prod\",\"continuousBackups\":"
                             "{\"pointInTimeRecoveryEnabled\":false}}}");
    const cJSON *v = policy_path_get(&t->settings[POLICY_PITR], obj);
    assert_true(cJSON_IsFalse(v));
    assert_string_equal(policy_path_get(&t->table_name, obj)->valuestring, "a-prod");
    assert_null(policy_path_get(&t->settings[POLICY_DELETION_PROTECTION], obj));
    // A step through a non-object is absent, not a crash.
    cJSON *flat = cJSON_Parse("{\"spec\":{\"continuousBackups\":[1]}}");
    assert_null(policy_path_get(&t->settings[POLICY_PITR], flat));
    cJSON_Delete(flat);
    cJSON_Delete(obj);

    // The printed form loads back to the same rows.
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    policy_print(p, f);
    fclose(f);
    struct policy *again = load_ok(buf);
    assert_int_equal(policy_spec(again)->resource_count, 2);
    assert_string_equal(policy_spec(again)->resources[1].settings[POLICY_PITR].text,
                        "spec.pointInTimeRecoveryEnabled");
    free(buf);
    policy_unref(again);
    policy_unref(p);
}

static void
test_resources_diagnostics(void **state)
{
    (void)state;
    assert_diag(HEAD "spec:\n  resources:\n    - {apiVersion: kro.run/v1alpha1, kind: X, "
                     "tableNameFrom: spec.t, deletionProtectionFrom: spec.d}\n",
                "p.yaml:6:7: resources[0] (X): missing required key \"pointInTimeRecoveryFrom\"");
    assert_diag(HEAD "spec:\n  resources:\n    - {apiVersion: kro.run/v1alpha1, kind: X, "
                     "tableNameFrom: spec., deletionProtectionFrom: spec.d, "
                     "pointInTimeRecoveryFrom: spec.p}\n",
                "resources[0] (X): \"tableNameFrom\" \"spec.\" has an empty path segment");
    assert_diag(HEAD "spec:\n  resources:\n    - {apiVersion: kro.run/, kind: X, "
                     "tableNameFrom: spec.t, deletionProtectionFrom: spec.d, "
                     "pointInTimeRecoveryFrom: spec.p}\n",
                "\"apiVersion\" \"kro.run/\" is not group/version");
    assert_diag(HEAD "spec:\n" TWO_ROWS "    - apiVersion: kro.run/v1alpha1\n"
                     "      kind: DynamoDBTable\n      tableNameFrom: a\n"
                     "      deletionProtectionFrom: b\n      pointInTimeRecoveryFrom: c\n",
                "resources[2] (DynamoDBTable): kro.run/v1alpha1 DynamoDBTable is already guarded "
                "by resources[1]");
    assert_diag(HEAD "spec:\n  resources: {kind: Table}\n",
                "spec: \"resources\" must be a list of mappings, got a mapping");
}

static void
test_reference_counting_and_digest(void **state)
{
    (void)state;
    const char *yaml = HEAD "spec: {}\n";
    struct policy *p = load_ok(yaml);
    char digest[65];
    policy_digest(yaml, strlen(yaml), digest);
    assert_string_equal(digest, policy_sha256(p));
    assert_ptr_equal(policy_ref(p), p);
    policy_unref(p);
    assert_string_equal(policy_spec(p)->name, "t"); // still held by the first reference
    policy_unref(p);
    policy_unref(NULL);
    policy_digest("", 0, digest);
    assert_string_equal(digest, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_thousand_rules_load(void **state)
{
    (void)state;
    size_t cap = 1u << 20, len = 0;
    char *yaml = xmalloc(cap);
    len += (size_t)snprintf(yaml, cap, HEAD "spec:\n  rules:\n");
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(yaml + len, cap - len,
                                "    - name: rule-%d\n      tables: ['team%d-*-prod']\n"
                                "      require: {deletionProtection: true}\n",
                                i, i);
    struct policy *p = load_ok(yaml);
    assert_int_equal(policy_spec(p)->rule_count, 1000);
    assert_string_equal(policy_spec(p)->rules[999].name, "rule-999");
    policy_unref(p);
    free(yaml);
}

static void
test_forbid_rules(void **state)
{
    (void)state;
    struct policy *p =
        load_ok(HEAD "spec:\n  rules:\n"
                     "    - {name: kept, tables: ['*-prod'], forbid: [remove, delete]}\n"
                     "    - {name: names, tables: ['*-prod'], forbid: [rename], "
                     "action: warn, message: '{transition} of {table}'}\n");
    const struct policy_spec *s = policy_spec(p);
    assert_int_equal(s->rules[0].forbid, POLICY_REMOVE | POLICY_DELETE);
    assert_int_equal(s->rules[1].forbid, POLICY_RENAME);
    for (int k = 0; k < POLICY_SETTING_COUNT; k++)
        assert_int_equal(s->rules[0].require[k], -1);
    // Printed and loaded again: the same rules.
    char *buf = printed(p);
    assert_non_null(strstr(buf, "      forbid: [remove, delete]\n"));
    assert_null(strstr(buf, "require"));
    struct policy *again = load_ok(buf);
    assert_int_equal(policy_spec(again)->rules[0].forbid, POLICY_REMOVE | POLICY_DELETE);
    assert_int_equal(policy_spec(again)->rules[1].forbid, POLICY_RENAME);
    free(buf);
    policy_unref(again);
    policy_unref(p);

    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [x], forbid: [remove], "
                     "require: {deletionProtection: true}}\n",
                "p.yaml:6:38: rule \"r\": a rule has \"require\" or \"forbid\", not both");
    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [x]}\n",
                "p.yaml:6:7: rule \"r\": missing \"require\" (settings a table must have) or "
                "\"forbid\" (transitions: remove, rename, delete)");
    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [x], forbid: [remvoe]}\n",
                "p.yaml:6:39: rule \"r\": unknown transition \"remvoe\" in \"forbid\" (expected "
                "remove, rename or delete; did you mean \"remove\"?)");
    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [x], forbid: [delete, delete]}\n",
                "rule \"r\": \"forbid\" names \"delete\" twice");
    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [x], forbid: []}\n",
                "rule \"r\": \"forbid\" names no transition");
    // No rule's own message may say the word Flux's force mode acts on.
    assert_diag(HEAD "spec:\n  rules:\n    - {name: r, tables: [x], forbid: [delete], "
                     "message: 'table {table} is Immutable'}\n",
                "rule \"r\": the message says \"immutable\"");
    // A bad value is reported once, not also as missing.
    size_t n;
    char *got =
        load_fail(HEAD "spec:\n  rules:\n    - {name: r, tables: [x], forbid: remove}\n", &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(got, "\"forbid\" must be a list of strings"));
    free(got);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_fill_a_minimal_policy),
        cmocka_unit_test(test_rule_defaults_and_explicit_values),
        cmocka_unit_test(test_globs_are_case_insensitive_fnmatch),
        cmocka_unit_test(test_compiled_globs_match_as_fnmatch),
        cmocka_unit_test(test_unknown_key_suggests_and_is_not_also_missing),
        cmocka_unit_test(test_wrong_types_say_what_was_expected),
        cmocka_unit_test(test_semantic_checks),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_empty_and_syntax_errors),
        cmocka_unit_test(test_anchors_and_aliases),
        cmocka_unit_test(test_every_error_in_one_pass_in_file_order),
        cmocka_unit_test(test_alias_bomb_is_bounded),
        cmocka_unit_test(test_print_normalises_and_round_trips),
        cmocka_unit_test(test_resources_load_look_up_and_read_paths),
        cmocka_unit_test(test_resources_diagnostics),
        cmocka_unit_test(test_reference_counting_and_digest),
        cmocka_unit_test(test_thousand_rules_load),
        cmocka_unit_test(test_forbid_rules),
        cmocka_unit_test(test_profiles_load_and_the_first_match_wins),
        cmocka_unit_test(test_profile_lookup_is_the_first_match_in_file_order),
        cmocka_unit_test(test_profile_diagnostics),
        cmocka_unit_test(test_profiles_print_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy/exceptions: loading, diagnostics, RFC 3339 times, the waiver lookup, and
// evaluation with exceptions (one rule waived and not another, globs, expiry at the second).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/eval.h"
#include "policy/exceptions.h"
#include "policy/resource.h"
#include "util/xalloc.h"

#define HEAD                                                                                       \
    "apiVersion: tableguard.io/v1\nkind: ProtectionExceptions\nmetadata: {name: approved}\n"

static const char GOOD[] = HEAD "spec:\n"
                                "  exceptions:\n"
                                "    - name: retire-orders\n"
                                "      ticket: CHG-1234\n"
                                "      approvedBy: jane@example.com\n"
                                "      reason: \"orders moved to orders-v2-prod\"\n"
                                "      expires: \"2026-12-05T00:00:00Z\"\n"
                                "      namespaces: [shop]\n"
                                "      applications: [orders]\n"
                                "      tables: [orders-prod]\n"
                                "      rules: [dp]\n"
                                "    - name: any-app\n"
                                "      ticket: CHG-9\n"
                                "      approvedBy: ops\n"
                                "      expires: 2026-12-01T12:30:00.5Z\n"
                                "      tables: ['cache-*']\n"
                                "      rules: [dp, pitr]\n";

// 2026-12-05T00:00:00Z and 2026-12-01T12:30:00Z in Unix seconds.
#define EXPIRES_ORDERS 1796428800LL
#define EXPIRES_CACHE 1796128200LL

static struct exceptions *
load_ok(const char *yaml)
{
    struct diag d = {0};
    struct exceptions *x = exceptions_load_buffer(yaml, strlen(yaml), "x.yaml", &d);
    for (size_t i = 0; i < d.count; i++)
        print_message("unexpected: %s\n", d.items[i].message);
    assert_non_null(x);
    assert_int_equal(d.count, 0);
    diag_free(&d);
    return x;
}

static void
assert_diag(const char *yaml, const char *expected)
{
    struct diag d = {0};
    struct exceptions *x = exceptions_load_buffer(yaml, strlen(yaml), "x.yaml", &d);
    assert_null(x);
    assert_true(d.count > 0);
    bool found = false;
    for (size_t i = 0; i < d.count && !found; i++) {
        char *line = diag_format(&d.items[i]);
        found = strstr(line, expected) != NULL;
        free(line);
    }
    if (!found) {
        for (size_t i = 0; i < d.count; i++)
            print_message("got: %s\n", d.items[i].message);
        fail_msg("expected \"%s\"", expected);
    }
    diag_free(&d);
}

static void
loads_every_field(void **state)
{
    (void)state;
    struct exceptions *x = load_ok(GOOD);
    assert_string_equal(exceptions_name(x), "approved");
    assert_string_equal(exceptions_file(x), "x.yaml");
    assert_int_equal(strlen(exceptions_sha256(x)), 64);
    assert_int_equal(exceptions_count(x), 2);
    const struct exception *e = exceptions_at(x, 0);
    assert_string_equal(e->name, "retire-orders");
    assert_string_equal(e->ticket, "CHG-1234");
    assert_string_equal(e->approved_by, "jane@example.com");
    assert_string_equal(e->reason, "orders moved to orders-v2-prod");
    assert_string_equal(e->expires_text, "2026-12-05T00:00:00Z");
    assert_true(e->expires == EXPIRES_ORDERS);
    assert_int_equal(e->line, 6);
    assert_int_equal(e->rule_count, 1);
    assert_string_equal(e->rules[0], "dp");
    e = exceptions_at(x, 1);
    assert_true(e->expires == EXPIRES_CACHE);
    assert_string_equal(e->reason, "");
    assert_string_equal(e->namespaces.items[0], "*");
    assert_string_equal(e->applications.items[0], "*");
    exceptions_unref(exceptions_ref(x));
    exceptions_unref(x);
    exceptions_unref(NULL);
    // An empty list is a valid file: the chart ships one.
    x = load_ok(HEAD "spec: {exceptions: []}\n");
    assert_int_equal(exceptions_count(x), 0);
    exceptions_unref(x);
}

static void
times_are_rfc3339_utc(void **state)
{
    (void)state;
    long long t;
    char err[120];
    assert_int_equal(exceptions_parse_time("1970-01-01T00:00:00Z", &t, err, sizeof err), 0);
    assert_true(t == 0);
    assert_int_equal(exceptions_parse_time("2000-02-29T23:59:59Z", &t, err, sizeof err), 0);
    assert_true(t == 951868799LL);
    assert_int_equal(exceptions_parse_time("2026-12-05T00:00:00.123Z", &t, err, sizeof err), 0);
    assert_true(t == EXPIRES_ORDERS);
    static const char *const bad[] = {
        "2026-12-05",
        "2026-12-05 00:00:00Z",
        "2026-12-05T00:00:00",
        "2026-12-05T00:00:00+01:00",
        "2026-12-05T00:00:00z",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-12-05T24:00:00Z",
        "2026-12-05T00:00:00.Z",
        "tomorrow",
        "",
        "2026-12-05T00:00:00Zjunk",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (exceptions_parse_time(bad[i], &t, err, sizeof err) == 0)
            fail_msg("\"%s\" parsed", bad[i]);
    exceptions_parse_time("2026-12-05T00:00:00+01:00", &t, err, sizeof err);
    assert_non_null(strstr(err, "times are UTC"));
}

static void
diagnostics_say_where_and_what(void **state)
{
    (void)state;
    assert_diag(HEAD "spec:\n  exceptions:\n    - {name: a, ticket: T, approvedBy: b, expires: "
                     "'2026-12-05', tables: [x], rules: [r]}\n",
                "x.yaml:6:52: exception \"a\": \"expires\" \"2026-12-05\" is not an RFC 3339 time");
    assert_diag(HEAD "spec:\n  exceptions:\n    - {name: a, approvedBy: b, expires: "
                     "'2026-12-05T00:00:00Z', tables: [x], rules: [r]}\n",
                "x.yaml:6:7: exception \"a\": missing required key \"ticket\"");
    assert_diag(HEAD "spec:\n  exceptions:\n    - {name: a, ticket: T, approvedby: b, expires: "
                     "'2026-12-05T00:00:00Z', tables: [x], rules: [r]}\n",
                "exception \"a\": unknown key \"approvedby\" (did you mean \"approvedBy\"?)");
    assert_diag(HEAD "spec:\n  exceptions:\n    - {name: a, ticket: T, approvedBy: b, expires: "
                     "'2026-12-05T00:00:00Z', tables: [], rules: []}\n",
                "exception \"a\": \"rules\" must name at least one rule it waives");
    assert_diag(HEAD "spec:\n  exceptions:\n"
                     "    - {name: a, ticket: T, approvedBy: b, expires: '2026-12-05T00:00:00Z', "
                     "tables: [x], rules: [r]}\n"
                     "    - {name: a, ticket: T, approvedBy: b, expires: '2026-12-05T00:00:00Z', "
                     "tables: [x], rules: [r]}\n",
                "x.yaml:7:7: exception \"a\": duplicate exception name");
    assert_diag(HEAD "spec:\n  exceptions:\n    - {name: a, ticket: T, approvedBy: b, expires: "
                     "'2026-12-05T00:00:00Z', tables: ['[x'], rules: [r]}\n",
                "exception \"a\": pattern \"[x\" has an unclosed \"[\"");
    assert_diag("", "x.yaml:1:1: empty exceptions file");
    assert_diag("apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\nmetadata: {name: p}\n"
                "spec: {exceptions: []}\n",
                "x.yaml:2:7: exceptions: unsupported kind \"ProtectionPolicy\" (expected "
                "\"ProtectionExceptions\"): this is a policy file");
    assert_diag(HEAD "spec: {}\n", "spec: missing required key \"exceptions\"");
    assert_diag(HEAD "spec: {exceptions: [}\n", "x.yaml:4:21: YAML syntax error");
    assert_diag(HEAD "spec: {exceptions: []}\n---\nx: 1\n", "a second YAML document");
    // More than EXCEPTIONS_MAX entries is refused, with the bound in the message.
    char *big = xstrdup(HEAD "spec:\n  exceptions:\n");
    for (int i = 0; i <= EXCEPTIONS_MAX; i++) {
        char *next = xasprintf("%s    - {name: e%d, ticket: T, approvedBy: b, expires: "
                               "'2026-12-05T00:00:00Z', tables: [x], rules: [r]}\n",
                               big, i);
        free(big);
        big = next;
    }
    assert_diag(big, "257 exceptions, more than the 256 a file may hold");
    free(big);
}

static void
waiver_matches_rule_table_namespace_application_and_time(void **state)
{
    (void)state;
    struct exceptions *x = load_ok(GOOD);
    long long before = EXPIRES_ORDERS - 1;
    const struct exception *e =
        exceptions_waiver(x, "dp", "ORDERS-PROD", "orders", "shop", before, 30);
    assert_non_null(e);
    assert_string_equal(e->name, "retire-orders");
    assert_null(exceptions_waiver(x, "pitr", "orders-prod", "orders", "shop", before, 30));
    assert_null(exceptions_waiver(x, "dp", "orders-prod", "billing", "shop", before, 30));
    assert_null(exceptions_waiver(x, "dp", "orders-prod", "orders", "other", before, 30));
    assert_null(exceptions_waiver(x, "dp", "users-prod", "orders", "shop", before, 30));
    // Void from its expiry on, to the second.
    assert_null(exceptions_waiver(x, "dp", "orders-prod", "orders", "shop", EXPIRES_ORDERS, 30));
    // An exception further ahead than the policy's cap is not honoured.
    long long early = EXPIRES_ORDERS - 31LL * 86400;
    assert_null(exceptions_waiver(x, "dp", "orders-prod", "orders", "shop", early, 30));
    assert_non_null(exceptions_waiver(x, "dp", "orders-prod", "orders", "shop", early, 31));
    assert_non_null(exceptions_waiver(x, "dp", "orders-prod", "orders", "shop", early, 0));
    e = exceptions_waiver(x, "pitr", "cache-eu", "any", "", EXPIRES_CACHE - 1, 30);
    assert_non_null(e);
    assert_string_equal(e->name, "any-app");
    assert_null(exceptions_waiver(NULL, "dp", "orders-prod", "orders", "shop", before, 30));
    exceptions_unref(x);
}

// The exception that waives `rule` for `table` (any namespace and Application) is `name`, or
// none when name is NULL.
static void
assert_waived_by(const struct exceptions *x, const char *rule, const char *table, long long now,
                 unsigned max_days, const char *name)
{
    const struct exception *e = exceptions_waiver(x, rule, table, "app", "ns", now, max_days);
    if (name == NULL) {
        assert_null(e);
        return;
    }
    assert_non_null(e);
    assert_string_equal(e->name, name);
}

// A request's view (in force, namespace and Application matched once) gives the same exception
// as the full lookup, for every rule, table, Application, namespace and time tried.
static void
view_waives_as_the_full_lookup(void **state)
{
    (void)state;
    struct exceptions *x = load_ok(GOOD);
    static const char *const rules[] = {"dp", "pitr", "keep"};
    static const char *const tables[] = {"orders-prod", "ORDERS-PROD", "cache-eu", "users-prod"};
    static const char *const apps[] = {"orders", "billing", "", NULL};
    static const char *const nss[] = {"shop", "other", "", NULL};
    static const long long times[] = {EXPIRES_CACHE - 1, EXPIRES_CACHE, EXPIRES_ORDERS - 1,
                                      EXPIRES_ORDERS - 40LL * 86400};
    size_t waived = 0;
    for (size_t a = 0; a < 4; a++)
        for (size_t n = 0; n < 4; n++)
            for (size_t t = 0; t < 4; t++)
                for (unsigned days = 0; days <= 30; days += 30) {
                    struct exceptions_view v;
                    exceptions_view_init(&v, x, apps[a], nss[n], times[t], days);
                    for (size_t r = 0; r < 3; r++)
                        for (size_t k = 0; k < 4; k++) {
                            const struct exception *want = exceptions_waiver(
                                x, rules[r], tables[k], apps[a], nss[n], times[t], days);
                            assert_ptr_equal(exceptions_waiver_among(&v, rules[r], tables[k]),
                                             want);
                            waived += want != NULL;
                        }
                }
    assert_true(waived > 10); // the combinations do reach waivers
    struct exceptions_view none;
    exceptions_view_init(&none, NULL, "orders", "shop", 0, 30);
    assert_null(exceptions_waiver_among(&none, "dp", "orders-prod"));
    exceptions_unref(x);
}

// The lookup tries only the exceptions naming the rule, and the first of them in the file that
// holds wins: whatever other rules an exception also names, whether it names one twice, and
// whether an earlier one has expired.
static void
waiver_is_the_first_in_file_order_among_those_naming_the_rule(void **state)
{
    (void)state;
    static const char FILE_ORDER[] = HEAD
        "spec:\n  exceptions:\n"
        "    - {name: old, ticket: T0, approvedBy: a, expires: \"2026-11-01T00:00:00Z\", "
        "tables: ['*'], rules: [dp]}\n"
        "    - {name: pitr-only, ticket: T1, approvedBy: a, expires: \"2026-12-20T00:00:00Z\", "
        "tables: ['*'], rules: [pitr]}\n"
        "    - {name: first, ticket: T2, approvedBy: a, expires: \"2026-12-20T00:00:00Z\", "
        "tables: ['orders-*'], rules: [pitr, dp, dp]}\n"
        "    - {name: second, ticket: T3, approvedBy: a, expires: \"2026-12-20T00:00:00Z\", "
        "tables: ['*-prod'], rules: [keep, dp]}\n"
        "    - {name: third, ticket: T4, approvedBy: a, expires: \"2026-12-20T00:00:00Z\", "
        "tables: ['*'], rules: [dp]}\n";
    struct exceptions *x = load_ok(FILE_ORDER);
    long long now = 1796083200LL; // 2026-12-01T00:00:00Z: "old" has expired
    assert_waived_by(x, "dp", "orders-prod", now, 30, "first");
    assert_waived_by(x, "dp", "users-prod", now, 30, "second");
    assert_waived_by(x, "dp", "users-dev", now, 30, "third");
    assert_waived_by(x, "dp", "users-dev", 1793404800LL, 60, "old"); // 2026-10-31
    assert_waived_by(x, "pitr", "users-dev", now, 30, "pitr-only");
    assert_waived_by(x, "keep", "users-prod", now, 30, "second");
    assert_waived_by(x, "keep", "users-dev", now, 30, NULL);
    assert_waived_by(x, "other", "orders-prod", now, 30, NULL);
    exceptions_unref(x);

    // More rule names than exceptions.
    x = load_ok(HEAD
                "spec:\n  exceptions:\n"
                "    - {name: wide, ticket: T, approvedBy: a, expires: \"2026-12-20T00:00:00Z\", "
                "tables: ['*'], rules: [a, b, c, d]}\n");
    assert_waived_by(x, "d", "orders-prod", now, 30, "wide");
    assert_waived_by(x, "a", "orders-prod", now, 30, "wide");
    assert_waived_by(x, "e", "orders-prod", now, 30, NULL);
    exceptions_unref(x);
}

static const char POLICY[] = "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\n"
                             "metadata: {name: t}\nspec:\n  rules:\n"
                             "    - {name: dp, tables: ['*-prod'], require: {deletionProtection: "
                             "true}}\n"
                             "    - {name: pitr, tables: ['*-prod'], require: "
                             "{pointInTimeRecovery: true}}\n";

static void
evaluation_waives_one_rule_but_not_another(void **state)
{
    (void)state;
    struct diag d = {0};
    struct policy *p = policy_load_buffer(POLICY, strlen(POLICY), "p.yaml", &d);
    assert_non_null(p);
    struct exceptions *x = load_ok(GOOD);
    cJSON *app = cJSON_Parse(
        "{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\",\"metadata\":{"
        "\"name\":\"orders\"},\"spec\":{\"components\":[{\"name\":\"o\",\"type\":"
        "\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"orders-prod\"},\"traits\":[{"
        "\"type\":\"dynamodb-protection-kro\",\"properties\":{\"deletionProtection\":false,"
        "\"pointInTimeRecovery\":false}}]},{\"name\":\"u\",\"type\":\"aws-dynamodb-kro\","
        "\"properties\":{\"tableName\":\"users-prod\"},\"traits\":[{\"type\":"
        "\"dynamodb-protection-kro\",\"properties\":{\"deletionProtection\":false}}]}]}}");
    assert_non_null(app);
    struct eval_input in = {.object = app,
                            .namespace = "shop",
                            .username = "alice",
                            .now = EXPIRES_ORDERS - 60,
                            .exceptions = x};
    struct eval_result r;
    eval_validate(p, &in, &r);
    // orders-prod: dp waived, pitr still denied; users-prod (outside the globs): dp denied.
    assert_true(r.denied);
    assert_int_equal(r.finding_count, 3);
    assert_string_equal(r.findings[0].rule->name, "dp");
    assert_non_null(r.findings[0].exception);
    assert_string_equal(r.findings[0].exception->name, "retire-orders");
    assert_string_equal(r.findings[1].rule->name, "pitr");
    assert_null(r.findings[1].exception);
    assert_string_equal(r.findings[2].table, "users-prod");
    assert_null(r.findings[2].exception);
    assert_non_null(strstr(r.deny_message, "2 violations"));
    assert_null(strstr(r.deny_message, "rule \"dp\" (tables *-prod) requires deletionProtection: "
                                       "true; deletionProtection is false: set deletionProtection: "
                                       "true in the dynamodb-protection-kro trait of component "
                                       "\"o\""));
    assert_int_equal(r.warning_count, 1);
    assert_string_equal(r.warnings[0], "exception retire-orders (CHG-1234, expires "
                                       "2026-12-05T00:00:00Z) waives dp on table \"orders-prod\"");
    // The table rows name the exception where it waived something.
    assert_int_equal(r.table_count, 2);
    assert_string_equal(r.tables[0].table, "orders-prod");
    assert_string_equal(r.tables[0].exception, "retire-orders");
    assert_null(r.tables[1].exception);
    eval_result_free(&r);

    // At its expiry the same request is denied for all three, and no warning names it.
    in.now = EXPIRES_ORDERS;
    eval_validate(p, &in, &r);
    assert_int_equal(r.finding_count, 3);
    assert_null(r.findings[0].exception);
    assert_non_null(strstr(r.deny_message, "3 violations"));
    assert_int_equal(r.warning_count, 0);
    eval_result_free(&r);

    // Without the pitr violation, the waived one alone leaves the request allowed.
    cJSON *props = cJSON_GetObjectItem(
        cJSON_GetArrayItem(
            cJSON_GetObjectItem(
                cJSON_GetArrayItem(
                    cJSON_GetObjectItem(cJSON_GetObjectItem(app, "spec"), "components"), 0),
                "traits"),
            0),
        "properties");
    cJSON_ReplaceItemInObject(props, "pointInTimeRecovery", cJSON_CreateTrue());
    cJSON_DeleteItemFromArray(cJSON_GetObjectItem(cJSON_GetObjectItem(app, "spec"), "components"),
                              1);
    in.now = EXPIRES_ORDERS - 60;
    eval_validate(p, &in, &r);
    assert_false(r.denied);
    assert_null(r.deny_message);
    assert_int_equal(r.finding_count, 1);
    assert_int_equal(r.warning_count, 1);
    eval_result_free(&r);
    cJSON_Delete(app);
    exceptions_unref(x);
    policy_unref(p);
}

// Fails unless the text of e holds `want`.
static void
assert_line(const struct diag_entry *e, const char *want)
{
    char *line = diag_format(e);
    if (strstr(line, want) == NULL)
        fail_msg("\"%s\" lacks \"%s\"", line, want);
    free(line);
}

static void
globs_overlap_as_fnmatch_would(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool meet;
    } cases[] = {
        {"orders-prod", "*-prod", true},
        {"ORDERS-PROD", "*-prod", true},
        {"orders-dev", "*-prod", false},
        {"*-staging", "*-prod", false},
        {"orders-*", "*-prod", true},
        {"*", "*-prod", true},
        {"db-[0-9]", "db-?", true},
        {"db-[0-9]", "db-[a-z]", false},
        {"db-[!0-9]", "db-7", false},
        {"db-[!0-9]", "db-x", true},
        {"a\\*b", "a*b", true},
        {"a\\*b", "axb", false},
        {"shop", "shop-*", false},
        {"shop*", "*-eu", true},
        {"", "*", true},
        {"x", "", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (exceptions_globs_overlap(cases[i].a, cases[i].b) != cases[i].meet ||
            exceptions_globs_overlap(cases[i].b, cases[i].a) != cases[i].meet)
            fail_msg("\"%s\" and \"%s\" should%s meet", cases[i].a, cases[i].b,
                     cases[i].meet ? "" : " not");
}

static void
lint_reports_unknown_rules_dead_globs_cap_and_expiry(void **state)
{
    (void)state;
    static const char policy[] = "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\n"
                                 "metadata: {name: t}\nspec:\n  exceptionsMaxDays: 10\n  rules:\n"
                                 "    - {name: prod-dp, tables: ['*-prod'], namespaces: [shop, "
                                 "'team-*'], require: {deletionProtection: true}}\n";
    struct diag d = {0};
    struct policy *p = policy_load_buffer(policy, strlen(policy), "p.yaml", &d);
    assert_non_null(p);
    struct exceptions *x = load_ok(
        HEAD "spec:\n  exceptions:\n"
             "    - {name: fine, ticket: T, approvedBy: b, expires: '2026-12-05T00:00:00Z', "
             "tables: [orders-prod], namespaces: [team-a], rules: [prod-dp]}\n"
             "    - {name: typo, ticket: T, approvedBy: b, expires: '2026-12-05T00:00:00Z', "
             "tables: [orders-prod], rules: [prod-db]}\n"
             "    - {name: dead, ticket: T, approvedBy: b, expires: '2026-12-05T00:00:00Z', "
             "tables: [orders-dev, 'x-*'], namespaces: [billing], rules: [prod-dp]}\n"
             "    - {name: old, ticket: T, approvedBy: b, expires: '2026-11-01T00:00:00Z', "
             "tables: ['*'], rules: [prod-dp]}\n"
             "    - {name: far, ticket: T, approvedBy: b, expires: '2027-01-01T00:00:00Z', "
             "tables: ['*'], rules: [prod-dp]}\n");
    struct diag errors = {0}, warnings = {0};
    long long now = EXPIRES_ORDERS - 5 * 86400;
    exceptions_lint(x, policy_spec(p), now, &errors, &warnings);
    static const char *const want[] = {
        "x.yaml:7: exception \"typo\": unknown rule \"prod-db\" (did you mean \"prod-dp\"?)",
        "x.yaml:8: exception \"dead\": tables pattern \"orders-dev\" can never match a table of "
        "the rules it waives",
        "x.yaml:8: exception \"dead\": namespaces pattern \"billing\" can never match",
        "x.yaml:10: exception \"far\": expires 2027-01-01T00:00:00Z, more than "
        "spec.exceptionsMaxDays (10) days ahead",
    };
    assert_int_equal(errors.count, sizeof want / sizeof *want);
    for (size_t i = 0; i < errors.count; i++)
        assert_line(&errors.items[i], want[i]);
    assert_int_equal(warnings.count, 1);
    assert_line(&warnings.items[0], "x.yaml:9: exception \"old\": expired at "
                                    "2026-11-01T00:00:00Z");
    diag_free(&errors);
    diag_free(&warnings);
    exceptions_unref(x);
    policy_unref(p);
}

static void
exceptions_waive_forbidden_transitions_too(void **state)
{
    (void)state;
    static const char policy[] = "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\n"
                                 "metadata: {name: t}\nspec:\n  rules:\n"
                                 "    - {name: kept, tables: ['*-prod'], forbid: [remove]}\n";
    struct diag d = {0};
    struct policy *p = policy_load_buffer(policy, strlen(policy), "p.yaml", &d);
    assert_non_null(p);
    struct exceptions *x =
        load_ok(HEAD "spec:\n  exceptions:\n    - {name: retire, ticket: CHG-7, approvedBy: jane, "
                     "expires: '2026-12-05T00:00:00Z', tables: [orders-prod], rules: [kept]}\n");
    cJSON *old = cJSON_Parse(
        "{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\",\"metadata\":{"
        "\"name\":\"orders\"},\"spec\":{\"components\":[{\"name\":\"o\",\"type\":"
        "\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"orders-prod\"}},{\"name\":\"u\","
        "\"type\":\"aws-dynamodb-kro\",\"properties\":{\"tableName\":\"users-prod\"}}]}}");
    cJSON *now = cJSON_Parse("{\"apiVersion\":\"core.oam.dev/v1beta1\",\"kind\":\"Application\","
                             "\"metadata\":{\"name\":\"orders\"},\"spec\":{\"components\":[]}}");
    struct eval_input in = {.object = now,
                            .namespace = "shop",
                            .username = "alice",
                            .old_object = old,
                            .operation = "UPDATE",
                            .now = EXPIRES_ORDERS - 1,
                            .exceptions = x};
    struct eval_result r;
    eval_validate(p, &in, &r);
    // Removing orders-prod is waived; removing users-prod is not.
    assert_true(r.denied);
    assert_int_equal(r.finding_count, 2);
    assert_non_null(strstr(r.deny_message, "1 violation"));
    assert_non_null(strstr(r.deny_message, "users-prod"));
    bool waived = false;
    for (size_t i = 0; i < r.table_count; i++)
        if (r.tables[i].old_table != NULL && strcmp(r.tables[i].old_table, "orders-prod") == 0)
            waived = r.tables[i].exception != NULL &&
                     strcmp(r.tables[i].exception, "retire") == 0 &&
                     strcmp(r.tables[i].transition, "remove") == 0;
    assert_true(waived);
    assert_int_equal(r.warning_count, 1);
    assert_non_null(strstr(r.warnings[0], "exception retire (CHG-7"));
    eval_result_free(&r);
    cJSON_Delete(old);
    cJSON_Delete(now);
    exceptions_unref(x);
    policy_unref(p);
}

static void
exceptions_waive_guarded_objects_too(void **state)
{
    (void)state;
    static const char policy[] =
        "apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\nmetadata: {name: t}\nspec:\n"
        "  resources:\n"
        "    - {apiVersion: dynamodb.services.k8s.aws/v1alpha1, kind: Table, tableNameFrom: "
        "spec.tableName, deletionProtectionFrom: spec.deletionProtectionEnabled, "
        "pointInTimeRecoveryFrom: spec.continuousBackups.pointInTimeRecoveryEnabled}\n"
        "  rules:\n"
        "    - {name: dp, tables: ['*-prod'], require: {deletionProtection: true}}\n";
    struct diag d = {0};
    struct policy *p = policy_load_buffer(policy, strlen(policy), "p.yaml", &d);
    assert_non_null(p);
    struct exceptions *x = load_ok(GOOD);
    cJSON *table =
        cJSON_Parse("{\"apiVersion\":\"dynamodb.services.k8s.aws/v1alpha1\",\"kind\":\"Table\","
                    "\"metadata\":{\"name\":\"orders\",\"namespace\":\"shop\",\"labels\":{"
                    "\"app.oam.dev/name\":\"orders\"}},\"spec\":{\"tableName\":"
                    "\"orders-prod\",\"deletionProtectionEnabled\":false,\"continuousBackups\":{"
                    "\"pointInTimeRecoveryEnabled\":true}}}");
    assert_non_null(table);
    struct eval_input in = {.object = table,
                            .namespace = "shop",
                            .username = "alice",
                            .operation = "UPDATE",
                            .old_object = table,
                            .now = EXPIRES_ORDERS - 1,
                            .exceptions = x};
    struct eval_result r;
    resource_validate(p, &in, &r);
    assert_false(r.denied);
    assert_int_equal(r.finding_count, 1);
    assert_non_null(r.findings[0].exception);
    assert_int_equal(r.warning_count, 1);
    assert_non_null(strstr(r.warnings[0], "exception retire-orders (CHG-1234"));
    eval_result_free(&r);
    in.now = EXPIRES_ORDERS;
    resource_validate(p, &in, &r);
    assert_true(r.denied);
    eval_result_free(&r);
    cJSON_Delete(table);
    exceptions_unref(x);
    policy_unref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_every_field),
        cmocka_unit_test(times_are_rfc3339_utc),
        cmocka_unit_test(diagnostics_say_where_and_what),
        cmocka_unit_test(waiver_matches_rule_table_namespace_application_and_time),
        cmocka_unit_test(waiver_is_the_first_in_file_order_among_those_naming_the_rule),
        cmocka_unit_test(view_waives_as_the_full_lookup),
        cmocka_unit_test(evaluation_waives_one_rule_but_not_another),
        cmocka_unit_test(exceptions_waive_forbidden_transitions_too),
        cmocka_unit_test(exceptions_waive_guarded_objects_too),
        cmocka_unit_test(globs_overlap_as_fnmatch_would),
        cmocka_unit_test(lint_reports_unknown_rules_dead_globs_cap_and_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

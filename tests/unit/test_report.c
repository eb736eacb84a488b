// SPDX-License-Identifier: Apache-2.0
// Unit tests for server/report: the times --since and --until take, and the filters on records
// read from a stream.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/report.h"

static const long long NOW = 1748772000000LL; // 2025-06-01T10:00:00Z

static long long
t(const char *s)
{
    long long out = -1;
    assert_int_equal(report_parse_time(s, NOW, &out), 0);
    return out;
}

static void
times_in_rfc3339_dates_and_ages(void **state)
{
    (void)state;
    assert_true(t("2025-06-01T10:00:00Z") == NOW);
    assert_true(t("2025-06-01T10:00:00.250Z") == NOW + 250);
    assert_true(t("2025-06-01T12:00:00+02:00") == NOW);
    assert_true(t("2025-06-01T09:30:00-00:30") == NOW);
    assert_true(t("2025-06-01") == NOW - 10 * 3600000LL);
    assert_true(t("90d") == NOW - 90 * 86400000LL);
    assert_true(t("12h") == NOW - 12 * 3600000LL);
    assert_true(t("30m") == NOW - 30 * 60000LL);
    assert_true(t("2w") == NOW - 14 * 86400000LL);
}

static void
bad_times_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "90",
                         "90x",
                         "d",
                         "-5d",
                         "2025-13-01",
                         "2025-06-01T25:00:00Z",
                         "2025-06-01T10:00:00",
                         "2025-06-01T10:00:00+2",
                         "2025-06-01Z",
                         "9999999999d",
                         "2025-06-01T10:00:00.Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long long out;
        if (report_parse_time(bad[i], NOW, &out) == 0)
            fail_msg("accepted %s", bad[i]);
    }
}

static void
a_stream_that_is_not_a_log_is_status_2(void **state)
{
    (void)state;
    char text[] = "not a log\n";
    FILE *in = fmemopen(text, strlen(text), "rb");
    char out[256] = {0}, diag[512] = {0};
    FILE *o = fmemopen(out, sizeof out, "w"), *d = fmemopen(diag, sizeof diag, "w");
    struct report_options opt = {0};
    assert_int_equal(report_stream(&opt, in, "x.log", o, d), 2);
    fclose(in);
    fclose(o);
    fclose(d);
    assert_non_null(strstr(diag, "x.log:1: not an audit log"));
    assert_string_equal(out, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(times_in_rfc3339_dates_and_ages),
        cmocka_unit_test(bad_times_are_refused),
        cmocka_unit_test(a_stream_that_is_not_a_log_is_status_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

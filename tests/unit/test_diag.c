// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy/diag: diagnostics kept as records, sorted by place, formatted on output.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/diag.h"

static void
expect_text(const struct diag_entry *e, const char *want)
{
    char *got = diag_format(e);
    assert_string_equal(got, want);
    free(got);
}

// The place is kept as numbers and only the text shows it, in the three shapes.
static void
keeps_the_place_as_data(void **state)
{
    (void)state;
    struct diag d = {0};
    diag_add(&d, "p.yaml", 14, 9, "rule \"%s\": unknown key", "prod");
    diag_add(&d, "p.yaml", 3, 0, "only a line");
    diag_add(&d, "p.yaml", 0, 0, "cannot open: %s", "No such file or directory");
    assert_int_equal(d.count, 3);
    assert_string_equal(d.items[0].file, "p.yaml");
    assert_int_equal(d.items[0].line, 14);
    assert_int_equal(d.items[0].col, 9);
    assert_string_equal(d.items[0].message, "rule \"prod\": unknown key");
    expect_text(&d.items[0], "p.yaml:14:9: rule \"prod\": unknown key");
    expect_text(&d.items[1], "p.yaml:3: only a line");
    expect_text(&d.items[2], "p.yaml: cannot open: No such file or directory");
    diag_free(&d);
    assert_int_equal(d.count, 0);
    assert_null(d.items);
}

// Sorting orders by line then column, keeps equal places in the order added, and leaves the
// entries before `first` where they were. A file name holding digits and colons does not
// confuse it (the place is never parsed back out of text).
static void
sorts_by_place_stably_from_first(void **state)
{
    (void)state;
    struct diag d = {0};
    diag_add(&d, "other.yaml", 9, 9, "earlier file");
    diag_add(&d, "dir:10:2/p.yaml", 12, 5, "c");
    diag_add(&d, "dir:10:2/p.yaml", 2, 7, "a");
    diag_add(&d, "dir:10:2/p.yaml", 12, 5, "d");
    diag_add(&d, "dir:10:2/p.yaml", 12, 1, "b");
    diag_add(&d, "dir:10:2/p.yaml", 0, 0, "whole file");
    diag_sort(&d, 1);
    const char *want[] = {"earlier file", "whole file", "a", "b", "c", "d"};
    for (size_t i = 0; i < d.count; i++)
        assert_string_equal(d.items[i].message, want[i]);
    diag_free(&d);
}

static void
prints_one_line_each(void **state)
{
    (void)state;
    struct diag d = {0};
    diag_add(&d, "p.yaml", 1, 2, "first");
    diag_add(&d, "p.yaml", 3, 4, "second");
    char buf[256] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    diag_print(&d, f);
    assert_int_equal(fclose(f), 0);
    assert_string_equal(buf, "p.yaml:1:2: first\np.yaml:3:4: second\n");
    diag_free(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keeps_the_place_as_data),
        cmocka_unit_test(sorts_by_place_stably_from_first),
        cmocka_unit_test(prints_one_line_each),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: Apache-2.0
// Unit tests for util/file: the capped whole-file reader and the directory fsync.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tg-file-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/data", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

// Writes n bytes of a repeating pattern to path.
static void
write_pattern(const char *path, size_t n)
{
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 26), out);
    assert_int_equal(fclose(out), 0);
}

// A file of exactly the cap is read whole, terminated, through several growths of the buffer.
static void
reads_a_file_of_exactly_the_cap(void **state)
{
    struct fixture *f = *state;
    size_t cap = 300000, len = 0;
    char why[128] = "";
    write_pattern(f->path, cap);
    char *buf = file_read(f->path, cap, &len, why, sizeof why);
    assert_non_null(buf);
    assert_int_equal(len, cap);
    assert_int_equal(buf[len], '\0');
    assert_int_equal(buf[0], 'a');
    assert_int_equal(buf[cap - 1], 'a' + (int)((cap - 1) % 26));
    free(buf);
}

// One byte more than the cap is refused, and the message gives the cap.
static void
refuses_a_file_over_the_cap(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    char why[128] = "";
    write_pattern(f->path, 1000001);
    assert_null(file_read(f->path, 1000000, &len, why, sizeof why));
    assert_string_equal(why, "file is larger than 1000000 bytes");
    write_pattern(f->path, (1u << 20) + 1);
    assert_null(file_read(f->path, 1u << 20, &len, why, sizeof why));
    assert_string_equal(why, "file is larger than 1048576 bytes");
}

static void
reads_an_empty_file(void **state)
{
    struct fixture *f = *state;
    size_t len = 99;
    char why[128] = "";
    write_pattern(f->path, 0);
    char *buf = file_read(f->path, 16, &len, why, sizeof why);
    assert_non_null(buf);
    assert_int_equal(len, 0);
    assert_int_equal(buf[0], '\0');
    free(buf);
}

static void
says_why_a_file_cannot_be_opened(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    char why[128] = "";
    assert_null(file_read(f->path, 16, &len, why, sizeof why));
    assert_string_equal(why, "cannot open: No such file or directory");
    // A directory opens but is no file to read.
    assert_null(file_read(f->dir, 16, &len, why, sizeof why));
    assert_string_equal(why, "is a directory, not a regular file");
    // A FIFO without a writer would block an open for reading for ever: refused at once.
    assert_int_equal(mkfifo(f->path, 0600), 0);
    assert_null(file_read(f->path, 16, &len, why, sizeof why));
    assert_string_equal(why, "is a FIFO, not a regular file");
}

// A stream is read to its end and left open for its owner.
static void
reads_a_stream_and_leaves_it_open(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    char why[128] = "";
    write_pattern(f->path, 40);
    FILE *in = fopen(f->path, "rb");
    assert_non_null(in);
    char *buf = file_read_stream(in, 40, &len, why, sizeof why);
    assert_non_null(buf);
    assert_int_equal(len, 40);
    assert_memory_equal(buf, "abcdefghijklmnopqrstuvwxyzabcdefghijklmn", 40);
    assert_int_equal(fgetc(in), EOF);
    assert_int_equal(fclose(in), 0);
    free(buf);
}

// The directory of a file just renamed into place is flushed; a missing directory is no error
// (best effort) and the path itself is left as it was.
static void
syncs_the_directory_of_a_path(void **state)
{
    struct fixture *f = *state;
    write_pattern(f->path, 3);
    char path[128];
    snprintf(path, sizeof path, "%s", f->path);
    file_sync_dir(path);
    assert_string_equal(path, f->path);
    file_sync_dir("/nonexistent-dir/file");
    assert_int_equal(access(f->path, F_OK), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reads_a_file_of_exactly_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_a_file_over_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_an_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(says_why_a_file_cannot_be_opened, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_a_stream_and_leaves_it_open, setup, teardown),
        cmocka_unit_test_setup_teardown(syncs_the_directory_of_a_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: Apache-2.0
// Unit tests of the audit log: chain, HMAC, rotation, failures, concurrency and the verifier.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/tmpdir.h"
#include <openssl/evp.h>

#include "server/audit.h"
#include "server/verify.h"

#define CORPUS "tests/cases/audit-tamper"
#define KEY "unit-test-hmac-key-0123456789"

static char dir[64];
static struct rlimit fsize_limit; /* restored after each test, even a failed one */
static char logpath[128];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tg-audit-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(logpath, sizeof(logpath), "%s/audit.log", dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    setrlimit(RLIMIT_FSIZE, &fsize_limit);
    signal(SIGXFSZ, SIG_DFL);
    return tmpdir_remove(dir);
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, r;
    do {
        cap = cap * 2 + 4096;
        buf = realloc(buf, cap + 1);
        assert_non_null(buf);
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (n == cap);
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void
spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Splits a file into lines (each keeps its newline); returns the count. */
static size_t
read_lines(const char *path, char ***out)
{
    char *buf = slurp(path, NULL);
    assert_non_null(buf);
    size_t n = 0;
    char **lines = NULL;
    for (char *p = buf; *p;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        lines = realloc(lines, (n + 1) * sizeof(*lines));
        assert_non_null(lines);
        lines[n++] = strndup(p, len);
        p += len;
    }
    free(buf);
    *out = lines;
    return n;
}

static void
write_lines(const char *path, char **lines, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputs(lines[i], f);
    assert_int_equal(fclose(f), 0);
}

static void
free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* Runs `audit verify` with the given arguments, captures its stdout into out. */
static int
run_verify(char *out, size_t outlen, int argc, char **argv)
{
    char cap[160];
    snprintf(cap, sizeof(cap), "%s/verify.out", dir);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    int rc = verify_main(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    char *text = slurp(cap, NULL);
    assert_non_null(text);
    snprintf(out, outlen, "%s", text);
    free(text);
    unlink(cap);
    return rc;
}

static int
verify(char *out, size_t outlen, const char *first, ...)
{
    char *argv[16] = {"verify"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s && argc < 15; s = va_arg(ap, const char *))
        argv[argc++] = (char *)s;
    va_end(ap);
    return run_verify(out, outlen, argc, argv);
}

static cJSON *
record(const char *uid)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "uid", uid);
    cJSON_AddStringToObject(r, "webhook", "validate");
    cJSON_AddStringToObject(r, "operation", "CREATE");
    cJSON_AddBoolToObject(r, "dryRun", 0);
    cJSON_AddStringToObject(r, "decision", "allow");
    cJSON_AddNumberToObject(r, "code", 200);
    return r;
}

static void
append_n(struct audit *a, int n, const char *prefix)
{
    char err[256], uid[64];
    for (int i = 0; i < n; i++) {
        snprintf(uid, sizeof(uid), "%s-%d", prefix, i);
        cJSON *r = record(uid);
        assert_int_equal(audit_append(a, r, NULL, err, sizeof(err)), 0);
        cJSON_Delete(r);
    }
}

static struct audit *
open_log(const char *path, enum audit_sync sync, uint64_t max_size, unsigned max_files,
         const char *key)
{
    char err[256] = "";
    struct audit_options o = {.path = path,
                              .hmac_key_path = key,
                              .sync = sync,
                              .max_size = max_size,
                              .max_files = max_files,
                              .replica = "replica-\"0\""};
    struct audit *a = audit_open(&o, err, sizeof(err));
    if (!a)
        fail_msg("audit_open: %s", err);
    return a;
}

/* The test's own digest of a line's body, independent of the module. */
static void
expect_line_hash(const char *line, const unsigned char *key, size_t keylen)
{
    size_t len = strlen(line);
    assert_true(len > 76 && line[len - 1] == '\n');
    const char *tail = line + len - 1 - 75;
    assert_memory_equal(tail, ",\"hash\":\"", 9);
    char *body = strndup(line, (size_t)(tail - line) + 1);
    body[tail - line] = '}';
    unsigned char md[64];
    size_t mdlen = 0;
    if (key)
        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
                                  (unsigned char *)body, strlen(body), md, sizeof(md), &mdlen));
    else {
        unsigned int l;
        assert_int_equal(EVP_Digest(body, strlen(body), md, &l, EVP_sha256(), NULL), 1);
        mdlen = l;
    }
    char hexs[65];
    for (size_t i = 0; i < mdlen; i++)
        snprintf(hexs + 2 * i, 3, "%02x", md[i]);
    assert_memory_equal(tail + 9, hexs, 64);
    free(body);
}

static void
test_sync_parse(void **state)
{
    (void)state;
    enum audit_sync s;
    assert_int_equal(audit_sync_parse("none", &s), 0);
    assert_int_equal(s, AUDIT_SYNC_NONE);
    assert_int_equal(audit_sync_parse("batch", &s), 0);
    assert_int_equal(s, AUDIT_SYNC_BATCH);
    assert_int_equal(audit_sync_parse("always", &s), 0);
    assert_int_equal(s, AUDIT_SYNC_ALWAYS);
    assert_int_equal(audit_sync_parse("sometimes", &s), -1);
    assert_int_equal(audit_sync_parse(NULL, &s), -1);
}

static void
test_chain_plain(void **state)
{
    (void)state;
    struct audit *a = open_log(logpath, AUDIT_SYNC_ALWAYS, 0, 0, NULL);
    char err[256];
    cJSON *r = record("uid-1");
    cJSON_AddStringToObject(r, "seq", "forged"); /* reserved members are replaced */
    struct audit_written w;
    assert_int_equal(audit_append(a, r, &w, err, sizeof(err)), 0);
    assert_int_equal(w.seq, 2);
    assert_int_equal(strlen(w.hash), 64);
    cJSON_Delete(r);
    append_n(a, 4, "uid");
    uint64_t records, errors;
    audit_stats(a, &records, &errors);
    assert_int_equal(records, 5);
    assert_int_equal(errors, 0);
    audit_close(a);
    audit_close(NULL);

    char **lines;
    size_t n = read_lines(logpath, &lines);
    assert_int_equal(n, 7); /* start, 5 decisions, stop */
    /* The seq and hash handed back are those of the record's line. */
    char tail[80];
    snprintf(tail, sizeof(tail), ",\"hash\":\"%s\"}", w.hash);
    assert_non_null(strstr(lines[1], tail));
    assert_non_null(strstr(lines[1], "\"seq\":2,"));
    char prev[65] = "0000000000000000000000000000000000000000000000000000000000000000";
    for (size_t i = 0; i < n; i++) {
        expect_line_hash(lines[i], NULL, 0);
        cJSON *j = cJSON_Parse(lines[i]);
        assert_non_null(j);
        assert_int_equal(cJSON_GetObjectItem(j, "seq")->valuedouble, (double)(i + 1));
        assert_string_equal(cJSON_GetObjectItem(j, "prev")->valuestring, prev);
        assert_string_equal(cJSON_GetObjectItem(j, "replica")->valuestring, "replica-\"0\"");
        const char *t = cJSON_GetObjectItem(j, "time")->valuestring;
        assert_int_equal(strlen(t), 24); /* 2025-01-02T03:04:05.678Z */
        assert_int_equal(t[23], 'Z');
        const char *ev = cJSON_GetObjectItem(j, "event")->valuestring;
        assert_string_equal(ev, i == 0 ? "start" : i == n - 1 ? "stop" : "decision");
        snprintf(prev, sizeof(prev), "%s", cJSON_GetObjectItem(j, "hash")->valuestring);
        cJSON_Delete(j);
    }
    assert_non_null(strstr(lines[0], "\"chain\":\"sha256\",\"after\":\"new\""));
    free_lines(lines, n);

    char out[2048];
    assert_int_equal(verify(out, sizeof(out), logpath, NULL), 0);
    assert_non_null(strstr(out, ": OK (7 records)\n"));
    assert_non_null(strstr(out, "chain OK: seq 1..7, last hash "));
    assert_non_null(strstr(out, prev));
}

static void
test_continue_after_reopen(void **state)
{
    (void)state;
    struct audit *a = open_log(logpath, AUDIT_SYNC_NONE, 0, 0, NULL);
    append_n(a, 3, "first");
    audit_close(a);
    a = open_log(logpath, AUDIT_SYNC_NONE, 0, 0, NULL);
    append_n(a, 2, "second");
    audit_close(a);
    char **lines;
    size_t n = read_lines(logpath, &lines);
    assert_int_equal(n, 9); /* start, 3, stop, start, 2, stop */
    assert_non_null(strstr(lines[5], "\"seq\":6,"));
    assert_non_null(
        strstr(lines[5], "\"event\":\"start\",\"chain\":\"sha256\",\"after\":\"stop\""));
    free_lines(lines, n);
    char out[2048];
    assert_int_equal(verify(out, sizeof(out), logpath, NULL), 0);
    assert_non_null(strstr(out, "chain OK: seq 1..9,"));
}

/* Whether the file at path holds a record with this uid, and how its first line starts. */
static bool
holds_uid(const char *path, const char *uid, const char *first_has)
{
    char **lines;
    size_t n = read_lines(path, &lines);
    char want[128];
    snprintf(want, sizeof(want), "\"uid\":\"%s\"", uid);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found = found || strstr(lines[i], want) != NULL;
    bool first = n > 0 && strstr(lines[0], first_has) != NULL;
    free_lines(lines, n);
    return found && first;
}

/* The writer notices by itself, before the next record, every way the path stops naming its
 * file: a rename, a deletion, another file renamed over it, the path replaced by a symbolic link.
 * A change that keeps the name (a chmod) starts no new file. The chain goes on across all. */
static void
test_path_changes_are_noticed_before_the_next_record(void **state)
{
    (void)state;
    struct audit *a = open_log(logpath, AUDIT_SYNC_NONE, 0, 0, NULL);
    append_n(a, 1, "before");
    char moved[160], other[160], target[160];
    snprintf(moved, sizeof(moved), "%s.moved", logpath);
    snprintf(other, sizeof(other), "%s/other", dir);
    snprintf(target, sizeof(target), "%s/target", dir);
    const char *reopen = "\"event\":\"start\",\"chain\":\"sha256\",\"after\":\"reopen\"";

    assert_int_equal(rename(logpath, moved), 0);
    append_n(a, 1, "renamed");
    append_n(a, 1, "settled"); /* past the first record of the new file */
    assert_true(holds_uid(logpath, "renamed-0", reopen));
    assert_true(holds_uid(moved, "before-0", "\"after\":\"new\""));

    assert_int_equal(unlink(logpath), 0);
    append_n(a, 1, "deleted");
    append_n(a, 1, "settled"); /* past the first record of the new file */
    assert_true(holds_uid(logpath, "deleted-0", reopen));

    spit(other, "", 0);
    assert_int_equal(rename(other, logpath), 0);
    append_n(a, 1, "replaced");
    append_n(a, 1, "settled"); /* past the first record of the new file */
    assert_true(holds_uid(logpath, "replaced-0", reopen));

    assert_int_equal(chmod(logpath, 0600), 0);
    append_n(a, 1, "chmod");
    assert_true(holds_uid(logpath, "replaced-0", reopen)); /* the same file */
    assert_true(holds_uid(logpath, "chmod-0", reopen));

    spit(target, "", 0);
    assert_int_equal(unlink(logpath), 0);
    assert_int_equal(symlink(target, logpath), 0);
    append_n(a, 1, "linked");
    assert_true(holds_uid(target, "linked-0", reopen));
    audit_close(a);
    unlink(logpath);
    unlink(target);
    unlink(moved);

    /* The log's directory renamed away and made anew, twice: the second time the directory
     * watched is the new one. */
    a = open_log(logpath, AUDIT_SYNC_NONE, 0, 0, NULL);
    append_n(a, 1, "settled");
    char away[2][96], was[2][128];
    for (int i = 0; i < 2; i++) {
        snprintf(away[i], sizeof(away[i]), "%s.away%d", dir, i);
        snprintf(was[i], sizeof(was[i]), "%.96s/audit.log", away[i]);
        assert_int_equal(rename(dir, away[i]), 0);
        assert_int_equal(mkdir(dir, 0700), 0);
        append_n(a, 1, i == 0 ? "moved-dir" : "moved-again");
        append_n(a, 1, "settled");
        assert_true(holds_uid(logpath, i == 0 ? "moved-dir-0" : "moved-again-0", reopen));
    }
    audit_close(a);
    for (int i = 0; i < 2; i++) {
        unlink(was[i]);
        rmdir(away[i]);
    }
}

/* A crash mid-write leaves a partial line; reopening cuts it and says so in the start record. */
static void
test_partial_tail_repaired(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct audit *a = open_log(logpath, AUDIT_SYNC_NONE, 0, 0, NULL);
        append_n(a, 3, "crash");
        _exit(0); /* no audit_close: like SIGKILL */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    FILE *f = fopen(logpath, "ab");
    fputs("{\"time\":\"2025-", f);
    fclose(f);
    char out[2048];
    int rc = verify(out, sizeof(out), logpath, NULL);
    if (rc != 1)
        fail_msg("verify: %d: %s", rc, out);
    assert_non_null(strstr(out, "audit.log:5: incomplete record without a newline"));

    struct audit *a = open_log(logpath, AUDIT_SYNC_NONE, 0, 0, NULL);
    append_n(a, 1, "after");
    audit_close(a);
    char **lines;
    size_t n = read_lines(logpath, &lines);
    assert_int_equal(n, 7);
    assert_non_null(strstr(lines[4], "\"after\":\"unclean\",\"repairedBytes\":14,"));
    free_lines(lines, n);
    assert_int_equal(verify(out, sizeof(out), logpath, "--sealed", NULL), 0);
}

static void
test_damaged_last_record_refused(void **state)
{
    (void)state;
    spit(logpath, "{\"not\":\"a record\"}\n", 19);
    char err[256] = "";
    struct audit_options o = {.path = logpath, .sync = AUDIT_SYNC_NONE};
    assert_null(audit_open(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "the last record is damaged"));
    size_t len;
    free(slurp(logpath, &len));
    assert_int_equal(len, 19); /* left untouched */
}

static void
test_hmac_chain(void **state)
{
    (void)state;
    char key[160], wrong[160];
    snprintf(key, sizeof(key), "%s/key", dir);
    snprintf(wrong, sizeof(wrong), "%s/wrong", dir);
    spit(key, KEY "\n", strlen(KEY) + 1);
    spit(wrong, KEY "!", strlen(KEY) + 1);
    struct audit *a = open_log(logpath, AUDIT_SYNC_BATCH, 0, 0, key);
    append_n(a, 5, "hmac");
    audit_close(a);
    char **lines;
    size_t n = read_lines(logpath, &lines);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++)
        expect_line_hash(lines[i], (const unsigned char *)KEY, strlen(KEY));
    assert_non_null(strstr(lines[0], "\"chain\":\"hmac-sha256\""));
    free_lines(lines, n);

    char out[2048];
    assert_int_equal(verify(out, sizeof(out), "--hmac-key", key, logpath, NULL), 0);
    assert_int_equal(verify(out, sizeof(out), logpath, NULL), 1);
    assert_non_null(strstr(out, "audit.log:1: hash mismatch"));
    assert_non_null(strstr(out, "pass --hmac-key"));
    assert_int_equal(verify(out, sizeof(out), "--hmac-key", wrong, logpath, NULL), 1);
    assert_non_null(strstr(out, "or the HMAC key is wrong"));

    spit(key, "short", 5);
    char err[256] = "";
    struct audit_options o = {.path = logpath, .hmac_key_path = key};
    assert_null(audit_open(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "an HMAC key must be 16 to 4096 bytes"));
}

/* Collects the seq of every record across files and checks 1..n with no gap or repeat. */
static void
expect_contiguous(const char **paths, size_t npaths, size_t *decisions)
{
    static char seen[100000];
    memset(seen, 0, sizeof(seen));
    size_t max = 0, count = 0;
    *decisions = 0;
    for (size_t p = 0; p < npaths; p++) {
        char **lines;
        size_t n = read_lines(paths[p], &lines);
        for (size_t i = 0; i < n; i++) {
            cJSON *j = cJSON_Parse(lines[i]);
            size_t seq = (size_t)cJSON_GetObjectItem(j, "seq")->valuedouble;
            assert_true(seq < sizeof(seen));
            assert_int_equal(seen[seq], 0);
            seen[seq] = 1;
            max = seq > max ? seq : max;
            count++;
            if (strcmp(cJSON_GetObjectItem(j, "event")->valuestring, "decision") == 0)
                (*decisions)++;
            cJSON_Delete(j);
        }
        free_lines(lines, n);
    }
    assert_int_equal(count, max);
}

#define MAX_FILES 1000

/* The log's files, oldest rotated first and FILE last; returns the count. */
static size_t
log_files(char names[][160], const char **paths)
{
    size_t np = 0;
    struct stat st;
    for (int i = MAX_FILES; i >= 1; i--) {
        snprintf(names[np], 160, "%s.%d", logpath, i);
        if (stat(names[np], &st) == 0)
            paths[np] = names[np], np++;
    }
    paths[np++] = logpath;
    return np;
}

/* Verifies all the files of the log and returns the verifier's status. */
static int
verify_files(const char **paths, size_t np, char *out, size_t outlen)
{
    char *argv[MAX_FILES + 2] = {"verify"};
    for (size_t i = 0; i < np; i++)
        argv[i + 1] = (char *)paths[i];
    return run_verify(out, outlen, (int)np + 1, argv);
}

static void
test_rotation(void **state)
{
    (void)state;
    const uint64_t max = 4096;
    struct audit *a = open_log(logpath, AUDIT_SYNC_ALWAYS, max, 3, NULL);
    append_n(a, 60, "rot");
    audit_close(a);
    char names[5][160];
    for (int i = 0; i < 5; i++) {
        if (i == 0)
            snprintf(names[i], sizeof(names[i]), "%s", logpath);
        else
            snprintf(names[i], sizeof(names[i]), "%s.%d", logpath, i);
    }
    struct stat st;
    assert_int_equal(stat(names[4], &st), -1); /* only 3 rotated files kept */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(stat(names[i], &st), 0);
        assert_true((uint64_t)st.st_size <= max + 300); /* + the rotate record */
        if (i > 0) {
            char **lines;
            size_t n = read_lines(names[i], &lines);
            assert_non_null(strstr(lines[n - 1], "\"event\":\"rotate\""));
            free_lines(lines, n);
        }
    }
    char out[4096];
    /* Any order: the verifier sorts by seq. */
    assert_int_equal(verify(out, sizeof(out), names[0], names[2], names[3], names[1], NULL), 0);
    assert_non_null(strstr(out, "note: the chain starts at seq "));
    /* Without the middle file the gap is found. */
    assert_int_equal(verify(out, sizeof(out), names[3], names[1], names[0], NULL), 1);
    assert_non_null(strstr(out, "where"));
}

static void
test_rotation_loses_nothing(void **state)
{
    (void)state;
    struct audit *a = open_log(logpath, AUDIT_SYNC_NONE, 2048, 100, NULL);
    append_n(a, 200, "keep");
    audit_close(a);
    static char names[MAX_FILES + 1][160];
    const char *paths[MAX_FILES + 1];
    size_t np = log_files(names, paths);
    assert_true(np > 10);
    size_t decisions;
    expect_contiguous(paths, np, &decisions);
    assert_int_equal(decisions, 200);
    char out[16384];
    assert_int_equal(verify_files(paths, np, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "chain OK: seq 1.."));
    assert_null(strstr(out, "note: the chain starts"));
}

/* A crash after FILE was renamed to FILE.1 but before a new FILE was written. */
static void
test_continue_from_rotated(void **state)
{
    (void)state;
    char one[160];
    snprintf(one, sizeof(one), "%s.1", logpath);
    struct audit *a = open_log(logpath, AUDIT_SYNC_NONE, 1024, 2, NULL);
    struct stat st;
    while (stat(one, &st) != 0)
        append_n(a, 1, "r");
    audit_close(a);
    assert_int_equal(truncate(logpath, 0), 0); /* the new FILE, empty */
    a = open_log(logpath, AUDIT_SYNC_NONE, 1024, 2, NULL);
    append_n(a, 1, "after");
    audit_close(a);
    char **lines;
    size_t n = read_lines(logpath, &lines);
    assert_non_null(strstr(lines[0], "\"after\":\"rotate\""));
    free_lines(lines, n);
    char out[2048];
    assert_int_equal(verify(out, sizeof(out), one, logpath, "--sealed", NULL), 0);
}

static void
test_dev_full(void **state)
{
    (void)state;
    struct audit *a = open_log("/dev/full", AUDIT_SYNC_ALWAYS, 1024, 1, NULL);
    uint64_t records, errors;
    audit_stats(a, &records, &errors);
    assert_int_equal(errors, 1); /* the start record */
    char err[256] = "";
    cJSON *r = record("full");
    assert_int_equal(audit_append(a, r, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No space left on device"));
    assert_null(cJSON_GetObjectItem(r, "seq"));
    cJSON_Delete(r);
    audit_stats(a, &records, &errors);
    assert_int_equal(records, 0);
    assert_int_equal(errors, 2);
    audit_close(a);
}

/* A file-size limit makes writes fail part-way, like a disk filling up mid-record. */
static void
test_write_failure_and_recovery(void **state)
{
    (void)state;
    struct audit *a = open_log(logpath, AUDIT_SYNC_ALWAYS, 0, 0, NULL);
    append_n(a, 3, "before");
    struct stat st;
    assert_int_equal(stat(logpath, &st), 0);
    struct rlimit lim = fsize_limit;
    lim.rlim_cur = (rlim_t)st.st_size + 100; /* room for part of one record */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    char err[256];
    for (int i = 0; i < 3; i++) {
        cJSON *r = record("lost");
        assert_int_equal(audit_append(a, r, NULL, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "write: File too large"));
        cJSON_Delete(r);
        struct stat now;
        assert_int_equal(stat(logpath, &now), 0);
        assert_int_equal(now.st_size, st.st_size); /* the partial line was cut off */
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &fsize_limit), 0);
    append_n(a, 2, "after");
    uint64_t records, errors;
    audit_stats(a, &records, &errors);
    assert_int_equal(records, 5);
    assert_int_equal(errors, 3);
    audit_close(a);
    char out[2048];
    assert_int_equal(verify(out, sizeof(out), "--sealed", logpath, NULL), 0);
    assert_non_null(strstr(out, "OK (7 records)"));
}

struct worker {
    struct audit *a;
    int id, n, failures;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    char err[256], uid[64];
    for (int i = 0; i < w->n; i++) {
        snprintf(uid, sizeof(uid), "t%d-%d", w->id, i);
        cJSON *r = record(uid);
        if (audit_append(w->a, r, NULL, err, sizeof(err)) != 0)
            w->failures++;
        cJSON_Delete(r);
    }
    return NULL;
}

static void
run_concurrent(enum audit_sync sync, uint64_t max_size)
{
    enum { THREADS = 6, PER = 150 };
    struct audit *a = open_log(logpath, sync, max_size, MAX_FILES, NULL);
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.a = a, .id = i, .n = PER};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    uint64_t records;
    audit_stats(a, &records, NULL);
    assert_int_equal(records, THREADS * PER);
    audit_close(a);

    /* Every uid exactly once, seq contiguous, chain intact. */
    static char names[MAX_FILES + 1][160];
    const char *paths[MAX_FILES + 1];
    size_t np = log_files(names, paths);
    size_t decisions;
    expect_contiguous(paths, np, &decisions);
    assert_int_equal(decisions, THREADS * PER);
    static char seen[THREADS][PER];
    memset(seen, 0, sizeof(seen));
    for (size_t p = 0; p < np; p++) {
        char **lines;
        size_t n = read_lines(paths[p], &lines);
        for (size_t i = 0; i < n; i++) {
            int tid, k;
            const char *u = strstr(lines[i], "\"uid\":\"t");
            if (u && sscanf(u, "\"uid\":\"t%d-%d\"", &tid, &k) == 2) {
                assert_int_equal(seen[tid][k], 0);
                seen[tid][k] = 1;
            }
        }
        free_lines(lines, n);
    }
    assert_null(memchr(seen, 0, sizeof(seen)));
    static char out[65536];
    assert_int_equal(verify_files(paths, np, out, sizeof(out)), 0);
}

static void
test_concurrent_always(void **state)
{
    (void)state;
    run_concurrent(AUDIT_SYNC_ALWAYS, 0);
}

static void
test_concurrent_rotation(void **state)
{
    (void)state;
    run_concurrent(AUDIT_SYNC_ALWAYS, 16384);
}

static void
test_concurrent_batch(void **state)
{
    (void)state;
    run_concurrent(AUDIT_SYNC_BATCH, 32768);
}

static int
open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* batch: a rotated-away file is fsynced and closed by the batch thread (a second rotation within
 * its 0.1 s flushes the previous one itself), and the oldest file, removed by the renames, is
 * freed when that thread closes it; so rotations leave few files open, none after the close,
 * and the files kept still verify. */
static void
test_batch_rotation_retires_files(void **state)
{
    (void)state;
    int base = open_fds();
    struct audit *a = open_log(logpath, AUDIT_SYNC_BATCH, 2048, 3, NULL);
    int most = 0;
    for (int i = 0; i < 20; i++) {
        append_n(a, 10, "retire");
        int n = open_fds() - base;
        most = n > most ? n : most;
    }
    /* Besides the log: the retired and the oldest file of at most two rotations (one the batch
     * thread is closing, one waiting for it) and the directory it fsyncs. A leak would hold
     * files for every one of the ~60 rotations. */
    if (most > 6)
        fail_msg("%d files open besides the log", most - 1);
    audit_close(a);
    assert_int_equal(open_fds(), base);
    char names[4][160];
    const char *paths[4];
    for (int i = 0; i < 4; i++) {
        if (i == 0)
            snprintf(names[i], sizeof(names[i]), "%s", logpath);
        else
            snprintf(names[i], sizeof(names[i]), "%s.%d", logpath, i);
        paths[i] = names[i];
    }
    struct stat st;
    char fourth[200];
    snprintf(fourth, sizeof(fourth), "%s.4", logpath);
    assert_int_equal(stat(fourth, &st), -1);
    static char out[16384];
    assert_int_equal(verify_files(paths, 4, out, sizeof(out)), 0);
}

/* batch: a reopen (SIGHUP, or the path renamed away) hands the file it leaves to the batch
 * thread, which fsyncs and closes it off the request path; reopens within the thread's 0.1 s
 * flush the previous file on the spot. No record is lost, no file stays open, and the files
 * verify as one chain. */
static void
test_batch_reopen_hands_the_file_over(void **state)
{
    (void)state;
    int base = open_fds();
    struct audit *a = open_log(logpath, AUDIT_SYNC_BATCH, 0, 0, NULL);
    int opened = open_fds();
    char names[6][160];
    const char *paths[6];
    for (int i = 0; i < 5; i++) {
        append_n(a, 3, "kept");
        snprintf(names[i], sizeof(names[i]), "%s.r%d", logpath, i);
        assert_int_equal(rename(logpath, names[i]), 0);
        audit_reopen(a);
        paths[i] = names[i];
    }
    append_n(a, 3, "last");
    /* The batch thread closes what it was handed within its interval. */
    for (int tries = 0; tries < 50 && open_fds() > opened; tries++)
        usleep(20000);
    assert_int_equal(open_fds(), opened);
    audit_close(a);
    assert_int_equal(open_fds(), base);
    snprintf(names[5], sizeof(names[5]), "%s", logpath);
    paths[5] = names[5];
    size_t kept = 0;
    unsigned long long seq = 0;
    for (int i = 0; i < 6; i++) {
        char **lines;
        size_t n = read_lines(paths[i], &lines);
        for (size_t j = 0; j < n; j++) {
            kept += strstr(lines[j], "\"uid\":\"kept-") != NULL;
            const char *at = strstr(lines[j], "\"seq\":");
            assert_non_null(at);
            assert_int_equal(strtoull(at + 6, NULL, 10), ++seq);
        }
        if (i == 5)
            assert_true(holds_uid(paths[i], "last-2", "\"after\":\"reopen\""));
        free_lines(lines, n);
    }
    assert_int_equal(kept, 15);
}

static void
test_stdout(void **state)
{
    (void)state;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    struct audit *a = open_log("-", AUDIT_SYNC_ALWAYS, 100, 1, NULL); /* no rotation on stdout */
    append_n(a, 4, "stdout");
    audit_close(a);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    char out[2048];
    assert_int_equal(verify(out, sizeof(out), "--sealed", logpath, NULL), 0);
    assert_non_null(strstr(out, "OK (6 records)"));
}

/* Tampering done here on a log this module wrote; the corpus does the same on an independent one.
 */
static void
test_verify_catches_tampering(void **state)
{
    (void)state;
    struct audit *a = open_log(logpath, AUDIT_SYNC_NONE, 0, 0, NULL);
    append_n(a, 8, "t");
    audit_close(a);
    char **orig;
    size_t n = read_lines(logpath, &orig);
    assert_int_equal(n, 10);
    char out[2048], *lines[16];
    struct {
        const char *what, *expect;
    } kinds[] = {
        {"edit", "audit.log:4: hash mismatch"},
        {"delete", "audit.log:4: seq 5 where 4 was expected"},
        {"insert", "audit.log:5: seq 4 where 5 was expected"},
        {"reorder", "audit.log:4: seq 5 where 4 was expected"},
        {"truncate", "audit.log:10: incomplete record without a newline"},
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        size_t m = n;
        memcpy(lines, orig, n * sizeof(*orig));
        char edited[4096];
        if (strcmp(kinds[k].what, "edit") == 0) {
            snprintf(edited, sizeof(edited), "%s", orig[3]);
            char *p = strstr(edited, "\"allow\"");
            memcpy(p, "\"deny\" ", 7); /* same length, different meaning */
            lines[3] = edited;
        } else if (strcmp(kinds[k].what, "delete") == 0) {
            memmove(lines + 3, lines + 4, (n - 4) * sizeof(*lines));
            m--;
        } else if (strcmp(kinds[k].what, "insert") == 0) {
            memmove(lines + 4, lines + 3, (n - 3) * sizeof(*lines));
            m++;
        } else if (strcmp(kinds[k].what, "reorder") == 0) {
            lines[3] = orig[4];
            lines[4] = orig[3];
        } else {
            snprintf(edited, sizeof(edited), "%.30s", orig[n - 1]);
            lines[n - 1] = edited;
        }
        write_lines(logpath, lines, m);
        assert_int_equal(verify(out, sizeof(out), logpath, NULL), 1);
        if (!strstr(out, kinds[k].expect))
            fail_msg("%s: got %s", kinds[k].what, out);
    }
    /* A tail cut at a record boundary: only --sealed or a checkpoint sees it. */
    write_lines(logpath, orig, n - 2);
    assert_int_equal(verify(out, sizeof(out), logpath, NULL), 0);
    assert_non_null(strstr(out, "note: the last record is not a stop record"));
    assert_int_equal(verify(out, sizeof(out), "--sealed", logpath, NULL), 1);
    assert_int_equal(verify(out, sizeof(out), "--checkpoint", "9", logpath, NULL), 1);
    assert_non_null(strstr(out, "checkpoint 9: not in the files given (they hold seq 1..8)"));
    free_lines(orig, n);
}

static void
test_verify_usage(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(verify(out, sizeof(out), NULL), 2);
    assert_int_equal(verify(out, sizeof(out), "--bogus", logpath, NULL), 2);
    assert_int_equal(verify(out, sizeof(out), "--checkpoint", "x", logpath, NULL), 2);
    assert_int_equal(verify(out, sizeof(out), "--checkpoint", "3:abc", logpath, NULL), 2);
    assert_int_equal(verify(out, sizeof(out), "/nonexistent/audit.log", NULL), 2);
    assert_non_null(strstr(out, "/nonexistent/audit.log: cannot open"));
}

/* The corpus: logs written by an independent writer, with the exact expected verdicts. */
static void
test_corpus(void **state)
{
    (void)state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    DIR *d = opendir(CORPUS);
    if (!d)
        fail_msg("%s: %s (run from the repository root)", CORPUS, strerror(errno));
    struct dirent *e;
    int cases = 0;
    while ((e = readdir(d))) {
        char casedir[4400], path[4500];
        snprintf(casedir, sizeof(casedir), "%s/%s/%s", cwd, CORPUS, e->d_name);
        snprintf(path, sizeof(path), "%s/args", casedir);
        char *args = slurp(path, NULL);
        if (!args || e->d_name[0] == '.') {
            free(args);
            continue;
        }
        snprintf(path, sizeof(path), "%s/stdout", casedir);
        char *want = slurp(path, NULL);
        snprintf(path, sizeof(path), "%s/status", casedir);
        char *status = slurp(path, NULL);
        assert_true(want && status);
        char *argv[16] = {"verify"};
        int argc = 1;
        for (char *tok = strtok(args, "\n"); tok && argc < 16; tok = strtok(NULL, "\n"))
            argv[argc++] = tok;
        assert_int_equal(chdir(casedir), 0);
        char out[8192];
        int rc = run_verify(out, sizeof(out), argc, argv);
        assert_int_equal(chdir(cwd), 0);
        if (rc != atoi(status) || strcmp(out, want) != 0)
            fail_msg("case %s: status %d (want %d)\n got: %s\nwant: %s", e->d_name, rc,
                     atoi(status), out, want);
        cases++;
        free(args);
        free(want);
        free(status);
    }
    closedir(d);
    assert_true(cases >= 15);
}

/* ---- records submitted to the writer's thread (audit_submit) ---- */

enum { GROUP = 40 };

static struct {
    struct audit *a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct audit_pending p[GROUP + 1];
    char text[GROUP + 1][96];
    int done;
    bool fail_the_group; /* the first record's done makes the group's write fail */
    unsigned long long syscw_before;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* The process's write-family syscalls so far (all threads). */
static unsigned long long
syscw(void)
{
    char *io = slurp("/proc/self/io", NULL);
    assert_non_null(io);
    const char *w = strstr(io, "syscw: ");
    assert_non_null(w);
    unsigned long long n = strtoull(w + 7, NULL, 10);
    free(io);
    return n;
}

static void
group_done(struct audit_pending *p)
{
    if (p == &g.p[0] && g.a != NULL) {
        /* The writer is in its done calls: what is submitted now waits, and is then written as
           one group. */
        if (g.fail_the_group) {
            struct stat st;
            assert_int_equal(stat(logpath, &st), 0);
            struct rlimit lim = fsize_limit;
            lim.rlim_cur = (rlim_t)st.st_size + 300; /* room for one record and a part */
            signal(SIGXFSZ, SIG_IGN);
            assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        }
        g.syscw_before = syscw();
        for (int i = 1; i <= GROUP; i++)
            audit_submit(g.a, &g.p[i]);
    }
    pthread_mutex_lock(&g.mu);
    g.done++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

static void
wait_done(int n)
{
    pthread_mutex_lock(&g.mu);
    while (g.done < n)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
}

static void
group_prepare(struct audit *a, bool fail)
{
    g.a = a;
    g.done = 0;
    g.fail_the_group = fail;
    for (int i = 0; i <= GROUP; i++) {
        snprintf(g.text[i], sizeof g.text[i],
                 "{\"uid\":\"g-%d\",\"webhook\":\"validate\",\"decision\":\"allow\"}", i);
        g.p[i] = (struct audit_pending){
            .record = g.text[i], .len = strlen(g.text[i]), .done = group_done};
    }
}

static void
test_submitted_records_share_one_write(void **state)
{
    (void)state;
    struct audit *a = open_log(logpath, AUDIT_SYNC_ALWAYS, 0, 0, NULL);
    assert_true(audit_groups(a));
    group_prepare(a, false);
    audit_submit(a, &g.p[0]);
    wait_done(GROUP + 1);
    /* The 40 records submitted while the writer was busy: one write(2), one fdatasync. */
    assert_int_equal(syscw() - g.syscw_before, 1);
    for (int i = 0; i <= GROUP; i++) {
        assert_int_equal(g.p[i].rc, 0);
        assert_int_equal(g.p[i].out.seq, g.p[0].out.seq + (uint64_t)i); /* in their order */
    }
    uint64_t records, errors;
    audit_stats(a, &records, &errors);
    assert_int_equal(records, GROUP + 1);
    assert_int_equal(errors, 0);
    audit_close(a);
    char **lines;
    size_t n = read_lines(logpath, &lines);
    assert_int_equal(n, GROUP + 3); /* start, the records, stop */
    for (int i = 0; i <= GROUP; i++) {
        char uid[32];
        snprintf(uid, sizeof uid, "\"uid\":\"g-%d\"", i);
        assert_non_null(strstr(lines[i + 1], uid));
        assert_non_null(strstr(lines[i + 1], g.p[i].out.hash));
    }
    free_lines(lines, n);
    char out[2048];
    assert_int_equal(verify(out, sizeof(out), "--sealed", logpath, NULL), 0);
}

/* A write that fails fails every record of its group; the chain goes on from the record
   before them. */
static void
test_failed_group_write_fails_every_record(void **state)
{
    (void)state;
    struct audit *a = open_log(logpath, AUDIT_SYNC_ALWAYS, 0, 0, NULL);
    group_prepare(a, true);
    audit_submit(a, &g.p[0]);
    wait_done(GROUP + 1);
    assert_int_equal(g.p[0].rc, 0);
    for (int i = 1; i <= GROUP; i++) {
        assert_int_equal(g.p[i].rc, -1);
        assert_non_null(strstr(g.p[i].err, "write: File too large"));
    }
    struct stat st;
    assert_int_equal(stat(logpath, &st), 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &fsize_limit), 0);
    char **lines;
    size_t n = read_lines(logpath, &lines);
    assert_int_equal(n, 2); /* the partial lines were cut off */
    free_lines(lines, n);
    g.a = NULL;
    g.p[1].rc = -1;
    audit_submit(a, &g.p[1]);
    wait_done(GROUP + 2);
    assert_int_equal(g.p[1].rc, 0);
    assert_int_equal(g.p[1].out.seq, g.p[0].out.seq + 1);
    uint64_t records, errors;
    audit_stats(a, &records, &errors);
    assert_int_equal(records, 2);
    assert_int_equal(errors, GROUP);
    audit_close(a);
    char out[2048];
    assert_int_equal(verify(out, sizeof(out), "--sealed", logpath, NULL), 0);
    assert_non_null(strstr(out, "OK (4 records)"));
}

/* Records still queued when the log closes are written before its stop record. */
static void
test_close_writes_what_was_submitted(void **state)
{
    (void)state;
    struct audit *a = open_log(logpath, AUDIT_SYNC_BATCH, 0, 0, NULL);
    assert_false(audit_groups(a));
    group_prepare(a, false);
    g.a = NULL; /* no follow-up submissions */
    for (int i = 0; i <= GROUP; i++)
        audit_submit(a, &g.p[i]);
    audit_close(a);
    assert_int_equal(g.done, GROUP + 1);
    for (int i = 0; i <= GROUP; i++)
        assert_int_equal(g.p[i].rc, 0);
    char out[2048];
    assert_int_equal(verify(out, sizeof(out), "--sealed", logpath, NULL), 0);
    assert_non_null(strstr(out, "OK (43 records)"));
    assert_false(audit_groups(NULL));
}

int
main(void)
{
    getrlimit(RLIMIT_FSIZE, &fsize_limit);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_parse),
        cmocka_unit_test_setup_teardown(test_chain_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_changes_are_noticed_before_the_next_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_partial_tail_repaired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_last_record_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hmac_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue_from_rotated, setup, teardown),
        cmocka_unit_test(test_dev_full),
        cmocka_unit_test_setup_teardown(test_write_failure_and_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submitted_records_share_one_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_group_write_fails_every_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_writes_what_was_submitted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_rotation_retires_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_reopen_hands_the_file_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_catches_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corpus, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: Apache-2.0
// The audit log writer: hash-chained JSON lines with group-committed fsync and rotation.
#include "server/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/chain.h"
#include "util/file.h"
#include "util/jsonw.h"
#include "util/mono.h"
#include "util/xalloc.h"

// Room for the members the module adds around the caller's: time, seq, replica (counted
// apart), event, prev; at most 167 bytes with a 20-digit seq.
#define LINE_OVERHEAD 200
// batch: how often the background thread fsyncs. Every 100 ms rather than every second: the same
// writeback in smaller pieces, so the requests sharing the core wait less behind it (make bench,
// 1 component: p99.9 3-6 ms against 5-9 ms) and a host crash loses less.
#ifndef BATCH_INTERVAL_MS
#define BATCH_INTERVAL_MS 100
#endif
// Line and serialisation buffers up to this size are kept for the next record.
#define LINE_KEEP_MAX (256 * 1024)

struct written {
    char time[32];
    uint64_t seq;
    char prev[CHAIN_HASH_HEX + 1];
    char hash[CHAIN_HASH_HEX + 1];
    uint64_t gen;
};

struct audit {
    pthread_mutex_t mu;
    pthread_cond_t synced_cv; // a leader's fsync finished
    pthread_cond_t tick_cv;   // wakes the batch thread early (close)
    pthread_t batcher;
    bool has_batcher; // --audit-sync batch, its thread running (set once, at open)
    bool stopping;
    bool ready; // audit_open finished: audit_close writes a "stop" record

    char *path;
    bool regular; // a regular file: fsync, truncate-on-failure and rotation apply
    int fd;       // -1 after a failed rotation; the next append reopens
    enum audit_sync sync;
    bool copy_stdout;     // also write each line to stdout
    uint64_t copy_errors; // lines that could not be copied to stdout
    uint64_t max_size;
    unsigned max_files;
    char *replica;      // plain
    char *replica_json; // quoted and escaped
    size_t replica_json_len;
    struct chain chain;
    time_t time_sec;    // the second time_text shows
    char time_text[24]; // YYYY-MM-DDTHH:MM:SS of time_sec
    size_t time_len;
    // The lines formatted and not yet written (format_locked), written with one write(2)
    // (flush_locked): one record's, or a group's. Empty whenever mu is free. out_seq, out_prev
    // and out_gen are the chain as it was before them, restored when their write fails.
    char *out;
    size_t out_len, out_cap;
    uint64_t out_seq, out_gen;
    char out_prev[CHAIN_HASH_HEX + 1];
    // The group being written: its records whose lines are in out lie in [grp_unflushed,
    // grp_cur) of its list.
    struct audit_pending *grp_unflushed, *grp_cur;

    // The writer's thread and the records submitted to it, under qmu.
    pthread_mutex_t qmu;
    pthread_cond_t q_cv; // a record queued, or stop
    pthread_t writer;
    bool has_writer, writer_waiting, q_stop;
    struct audit_pending *q_head, *q_tail;

    uint64_t seq;                  // seq of the last record written
    char prev[CHAIN_HASH_HEX + 1]; // hash of the last record written
    uint64_t size;                 // bytes of complete records in the current file
    bool damaged;                  // a failed write left bytes that could not be cut off
    bool start_pending;            // the "start" record is still to be written
    const char *start_after;       // what the start record says preceded it
    uint64_t start_repaired;       // bytes of an incomplete line cut off at open

    uint64_t written_gen;          // records written (write(2) done) into the log
    uint64_t synced_gen;           // records known to be on stable storage
    uint64_t failed_lo, failed_hi; // records in (lo, hi] were covered by a failed fsync
    int failed_errno;
    bool syncing; // a leader is in fsync outside the lock
    int batch_errno;
    // batch: a file rotated away, for the batch thread to fsync and close off the request path
    // (-1: none), and whether the directory's renames still need an fsync.
    int retired_fd;
    bool dir_sync_pending;
    // batch: the oldest rotated file, which the rotation's renames removed, held open so that
    // freeing its blocks happens when the batch thread closes it (-1: none)
    int doomed_fd;

    _Atomic uint64_t records, write_errors;
    // The file the log writes to, to notice when it is deleted or renamed away.
    dev_t dev;
    ino_t ino;
    // inotify on the file and its directory (-1: none, every record stats the path): a record
    // stats the path only after an event, since a stat per record cost more than the write.
    int watch_fd;
    int watch_wd;        // the file's watch
    bool recheck;        // stat the path before the next record whatever the watch says
    atomic_bool reopen;  // SIGHUP: open the path again before the next record
    atomic_bool failing; // the last append failed; cleared by the next record written
    char failure[256];   // why, under mu
};

int
audit_sync_parse(const char *s, enum audit_sync *out)
{
    static const struct {
        const char *name;
        enum audit_sync v;
    } names[] = {
        {"none", AUDIT_SYNC_NONE}, {"batch", AUDIT_SYNC_BATCH}, {"always", AUDIT_SYNC_ALWAYS}};
    for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].v;
            return 0;
        }
    return -1;
}

static bool
is_record(const char *record, size_t len)
{
    return record != NULL && len >= 2 && record[0] == '{' && record[len - 1] == '}';
}

static int
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

// Now as RFC 3339 UTC with milliseconds. The date and time to the second are formatted once a
// second, not once a record; called under the lock.
static void
format_time(struct audit *a, char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != a->time_sec || a->time_len == 0) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        a->time_len = strftime(a->time_text, sizeof(a->time_text), "%Y-%m-%dT%H:%M:%S", &tm);
        a->time_sec = ts.tv_sec;
    }
    memcpy(out, a->time_text, a->time_len);
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    char *p = out + a->time_len;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    *p = '\0';
}

static size_t
put(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
    return n;
}

// A failed write may have left part of a line. Cut the file back to the last complete record so
// that later records still verify; if that is impossible the log stays damaged and every append
// fails until a cut succeeds.
static void
cut_partial(struct audit *a)
{
    if (!a->regular) {
        // A pipe or device cannot be cut; a partial line there shows up in verification.
        return;
    }
    a->damaged = ftruncate(a->fd, (off_t)a->size) != 0;
}

// Settles the group's records whose lines were in out: rc 0, or -1 with err.
static void
settle_locked(struct audit *a, int rc, const char *err)
{
    for (struct audit_pending *p = a->grp_unflushed; p != NULL && p != a->grp_cur; p = p->next)
        if (p->buffered) {
            p->buffered = false;
            p->rc = rc;
            if (rc < 0)
                snprintf(p->err, sizeof p->err, "%s", err);
        }
    a->grp_unflushed = a->grp_cur;
}

// Writes the lines in out with one write(2). On failure the chain goes back to where it was
// before them (a partial line is cut off) and every record among them fails.
static int
flush_locked(struct audit *a, char *err, size_t errlen)
{
    if (a->out_len == 0)
        return 0;
    size_t len = a->out_len;
    a->out_len = 0;
    int rc = write_all(a->fd, a->out, len);
    int e = errno;
    // The copy goes out under the lock too, so stdout carries the file's lines in the file's
    // order: the same chain, verifiable on its own. The file is the durable copy.
    if (rc == 0 && a->copy_stdout && write_all(STDOUT_FILENO, a->out, len) < 0)
        a->copy_errors++;
    if (a->out_cap > LINE_KEEP_MAX) {
        // A rare huge record (a 1000-component review) does not pin its buffer for good.
        free(a->out);
        a->out = NULL;
        a->out_cap = 0;
    }
    if (rc < 0) {
        cut_partial(a);
        a->seq = a->out_seq;
        memcpy(a->prev, a->out_prev, sizeof(a->prev));
        a->written_gen = a->out_gen;
        chain_seterr(err, errlen, "audit log %s: write: %s", a->path, strerror(e));
        settle_locked(a, -1, err);
        return -1;
    }
    a->size += len;
    if (!a->regular)
        a->synced_gen = a->written_gen; // nothing to fsync on a pipe or device
    settle_locked(a, 0, NULL);
    return 0;
}

// Formats the next record of the chain into out: event and the caller's members (inner,
// without braces), under the lock. Advances seq and prev and fills w; flush_locked writes it.
static int
format_locked(struct audit *a, const char *event, const char *inner, size_t inner_len,
              struct written *w, char *err, size_t errlen)
{
    if (a->out_len == 0) {
        if (a->damaged) {
            cut_partial(a);
            if (a->damaged) {
                chain_seterr(err, errlen, "audit log %s: cannot cut off a partial record: %s",
                             a->path, strerror(errno));
                return -1;
            }
        }
        a->out_seq = a->seq;
        memcpy(a->out_prev, a->prev, sizeof(a->prev));
        a->out_gen = a->written_gen;
    }
    size_t cap = a->out_len + inner_len + a->replica_json_len + LINE_OVERHEAD + CHAIN_HASH_TAIL_LEN;
    if (cap > a->out_cap) {
        size_t grown = a->out_cap * 2 > cap ? a->out_cap * 2 : cap;
        a->out = xrealloc(a->out, grown);
        a->out_cap = grown;
    }
    char *line = a->out + a->out_len;
    format_time(a, w->time);
    w->seq = a->seq + 1;
    memcpy(w->prev, a->prev, sizeof(w->prev));
    // Formatted by hand: snprintf cost a tenth of the record's writing.
    size_t len = put(line, "{\"time\":\"", 9);
    len += put(line + len, w->time, strlen(w->time));
    len += put(line + len, "\",\"seq\":", 8);
    len += jsonw_format_uint(line + len, w->seq);
    len += put(line + len, ",\"replica\":", 11);
    len += put(line + len, a->replica_json, a->replica_json_len);
    len += put(line + len, ",\"event\":\"", 10);
    len += put(line + len, event, strlen(event));
    len += put(line + len, "\"", 1);
    if (inner_len > 0) {
        line[len++] = ',';
        len += put(line + len, inner, inner_len);
    }
    len += put(line + len, ",\"prev\":\"", 9);
    len += put(line + len, w->prev, CHAIN_HASH_HEX);
    len += put(line + len, "\"}", 2);
    if (chain_digest(&a->chain, line, len, w->hash) < 0) {
        chain_seterr(err, errlen, "audit log: digest failed");
        return -1;
    }
    len--; // replace the closing brace by the hash member
    len += put(line + len, CHAIN_HASH_PREFIX, sizeof(CHAIN_HASH_PREFIX) - 1);
    len += put(line + len, w->hash, CHAIN_HASH_HEX);
    len += put(line + len, "\"}\n", 3);
    a->out_len += len;
    a->seq = w->seq;
    memcpy(a->prev, w->hash, sizeof(a->prev));
    w->gen = ++a->written_gen;
    return 0;
}

// Writes the next record of the chain (after any of a group's lines formatted before it).
// On success advances seq and prev and fills w; on failure leaves the chain as it was.
static int
write_record_locked(struct audit *a, const char *event, const char *inner, size_t inner_len,
                    struct written *w, char *err, size_t errlen)
{
    if (format_locked(a, event, inner, inner_len, w, err, errlen) < 0)
        return -1;
    return flush_locked(a, err, errlen);
}

// After a failed fsync the kernel may have dropped those pages: every record written since the
// last good fsync is reported as failed to its waiter, even if a later fsync succeeds.
static void
mark_sync_failed(struct audit *a, uint64_t target, int e)
{
    if (a->failed_hi == 0)
        a->failed_lo = a->synced_gen;
    if (target > a->failed_hi)
        a->failed_hi = target;
    a->failed_errno = e;
}

// Group commit: waits until record gen is on stable storage. The first waiter becomes the leader
// and fsyncs outside the lock for everything written so far; the others wait for its result, so
// a burst of concurrent appends costs one fsync instead of one each.
static int
sync_locked(struct audit *a, uint64_t gen, char *err, size_t errlen)
{
    for (;;) {
        if (gen > a->failed_lo && gen <= a->failed_hi) {
            chain_seterr(err, errlen, "audit log %s: fsync: %s", a->path,
                         strerror(a->failed_errno));
            return -1;
        }
        if (a->synced_gen >= gen)
            return 0;
        if (a->syncing) {
            pthread_cond_wait(&a->synced_cv, &a->mu);
            continue;
        }
        a->syncing = true;
        uint64_t target = a->written_gen;
        int fd = a->fd;
        pthread_mutex_unlock(&a->mu);
        int rc = fdatasync(fd);
        int e = errno;
        pthread_mutex_lock(&a->mu);
        a->syncing = false;
        if (rc == 0) {
            if (target > a->synced_gen)
                a->synced_gen = target;
        } else {
            mark_sync_failed(a, target, e);
        }
        pthread_cond_broadcast(&a->synced_cv);
    }
}

// Watches the file just opened and its directory: any change of name in the directory (a
// deletion, a rename, a file or link renamed over the path), the file's own rename or deletion
// (IN_ATTRIB: its link count), or the directory's. Without inotify (no instance left) every
// record stats the path instead.
static void
watch_file(struct audit *a)
{
    if (a->watch_fd < 0)
        a->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (a->watch_fd < 0)
        return;
    // The directory again at every open: one deleted and made anew is another inode.
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", a->path);
    if (a->watch_wd >= 0)
        (void)inotify_rm_watch(a->watch_fd, a->watch_wd);
    a->watch_wd =
        inotify_add_watch(a->watch_fd, a->path, IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF);
    if (a->watch_wd < 0 || inotify_add_watch(a->watch_fd, dirname(dir),
                                             IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                                 IN_MOVE_SELF | IN_DELETE_SELF) < 0) {
        close(a->watch_fd);
        a->watch_fd = a->watch_wd = -1;
    }
    // The path may have changed between the open and the watch.
    a->recheck = true;
}

static int
open_file(struct audit *a, char *err, size_t errlen)
{
    a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    struct stat st;
    if (a->fd < 0 || fstat(a->fd, &st) < 0) {
        chain_seterr(err, errlen, "audit log %s: %s", a->path, strerror(errno));
        if (a->fd >= 0)
            close(a->fd);
        a->fd = -1;
        return -1;
    }
    a->regular = S_ISREG(st.st_mode);
    a->size = a->regular ? (uint64_t)st.st_size : 0;
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    if (a->regular)
        watch_file(a);
    return 0;
}

// Whether the path still names the file being written: a log deleted or renamed away (by hand,
// or by a rotation tool that then sends SIGHUP) would otherwise take every later record with it.
static bool
file_gone(struct audit *a)
{
    if (a->watch_fd >= 0) {
        // Nothing happened to the file or its directory's names: no need to look.
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool events = false;
        while (read(a->watch_fd, buf, sizeof buf) > 0)
            events = true;
        if (!events && !a->recheck)
            return false;
        a->recheck = false;
    }
    struct stat st;
    return stat(a->path, &st) != 0 || st.st_dev != a->dev || st.st_ino != a->ino;
}

// Fsyncs and closes a file rotated away; returns 0 or an errno.
static int
retire(int fd)
{
    int e = fdatasync(fd) < 0 ? errno : 0;
    close(fd);
    return e;
}

// batch: hands the current file to the batch thread, which fsyncs and closes it off the request
// path before it syncs anything newer. The batch thread may be in an fsync of that very file: it
// stays open, so nothing waits for that fsync.
static void
retire_later_locked(struct audit *a)
{
    if (a->retired_fd >= 0) {
        // The batch thread has not reached the previous one yet (two within its interval):
        // flush that one here, once the batch thread is out of any fsync of it.
        while (a->syncing)
            pthread_cond_wait(&a->synced_cv, &a->mu);
        int e = retire(a->retired_fd);
        if (e)
            a->batch_errno = e;
    }
    a->retired_fd = a->fd;
    pthread_cond_broadcast(&a->tick_cv);
}

// Closes a file that is gone (its records made durable first: a renamed file is kept) and
// opens the path again; the next record is a "start" saying so.
static int
reopen_locked(struct audit *a, char *err, size_t errlen)
{
    // A group's lines formatted before the path changed go to the file they were checked
    // against (a failure fails those records only).
    char ignored[256];
    (void)flush_locked(a, ignored, sizeof ignored);
    if (a->has_batcher) {
        // Flushing the file here would stall every request behind the lock (SIGHUP under
        // load): the batch thread fsyncs and closes it instead, as it does a rotated file.
        retire_later_locked(a);
    } else {
        while (a->syncing) // the leader's fd must stay open until its fsync returns
            pthread_cond_wait(&a->synced_cv, &a->mu);
        if (a->written_gen > a->synced_gen && fsync(a->fd) == 0)
            a->synced_gen = a->written_gen;
        close(a->fd);
    }
    a->fd = -1;
    if (open_file(a, err, errlen) < 0)
        return -1;
    a->start_after = "reopen";
    a->start_pending = true;
    return 0;
}

static void
rotated_name(const struct audit *a, unsigned i, char *out, size_t n)
{
    snprintf(out, n, "%s.%u", a->path, i);
}

// Seals the current file with a "rotate" record, shifts FILE.i to FILE.i+1 (the oldest falls
// off), renames FILE to FILE.1 and opens a fresh FILE. The chain simply continues: the next
// record's prev is the rotate record's hash. Called with the lock held and no leader in fsync
// (batch: the batch thread may be in an fsync of the sealed file, which it is handed).
//
// How the sealed file reaches the disk follows the sync mode. always: it is fsynced here, before
// any record goes to the new file. batch: the batch thread fsyncs it (then the directory) within
// its usual interval, so a rotation does not stall the requests behind the lock for the flush of
// a whole file. none: nothing is fsynced.
static int
rotate_locked(struct audit *a, char *err, size_t errlen)
{
    struct written w;
    if (write_record_locked(a, "rotate", "", 0, &w, err, errlen) < 0)
        return -1;
    if (a->sync == AUDIT_SYNC_ALWAYS) {
        if (fdatasync(a->fd) < 0) {
            mark_sync_failed(a, a->written_gen, errno);
            chain_seterr(err, errlen, "audit log %s: fsync: %s", a->path, strerror(errno));
            return -1;
        }
        a->synced_gen = a->written_gen;
        close(a->fd);
    } else if (a->has_batcher) {
        retire_later_locked(a);
    } else {
        close(a->fd);
    }
    a->fd = -1;
    char from[PATH_MAX], to[PATH_MAX];
    if (a->has_batcher && a->doomed_fd < 0) {
        rotated_name(a, a->max_files, from, sizeof(from));
        a->doomed_fd = open(from, O_RDONLY | O_CLOEXEC);
    }
    for (unsigned i = a->max_files; i > 1; i--) {
        rotated_name(a, i - 1, from, sizeof(from));
        rotated_name(a, i, to, sizeof(to));
        if (rename(from, to) < 0 && errno != ENOENT)
            break; // keep going: a gap in the numbers only costs an old file
    }
    rotated_name(a, 1, to, sizeof(to));
    // If the rename fails the records simply continue in FILE after its rotate record.
    (void)rename(a->path, to);
    if (open_file(a, err, errlen) < 0)
        return -1;
    if (a->sync == AUDIT_SYNC_ALWAYS)
        file_sync_dir(a->path);
    else if (a->sync == AUDIT_SYNC_BATCH) {
        a->dir_sync_pending = true;
        pthread_cond_broadcast(&a->tick_cv);
    }
    return 0;
}

// Makes the log ready for a record of about len bytes: reopen, start record, rotation. look:
// check that the path still names the file (a group checks once, after its records were
// submitted and before the write that carries them).
static int
prepare_locked(struct audit *a, size_t len, bool look, char *err, size_t errlen)
{
    if (a->batch_errno) {
        chain_seterr(err, errlen, "audit log %s: background fsync: %s", a->path,
                     strerror(a->batch_errno));
        a->batch_errno = 0;
        return -1;
    }
    if (a->fd < 0 && open_file(a, err, errlen) < 0)
        return -1;
    if (a->regular && look && (atomic_exchange(&a->reopen, false) || file_gone(a)) &&
        reopen_locked(a, err, errlen) < 0)
        return -1;
    while (a->max_size && a->regular && a->size + a->out_len > 0 &&
           a->size + a->out_len + len > a->max_size) {
        if (a->syncing && !a->has_batcher) {
            // The leader's fd must stay open until its fsync returns (batch: the file goes to
            // the batch thread, nothing closes it here).
            pthread_cond_wait(&a->synced_cv, &a->mu);
            continue;
        }
        if (rotate_locked(a, err, errlen) < 0)
            return -1;
    }
    if (a->start_pending) {
        char inner[160];
        int n = snprintf(inner, sizeof(inner), "\"chain\":\"%s\",\"after\":\"%s\"",
                         a->chain.key != NULL ? "hmac-sha256" : "sha256", a->start_after);
        if (a->start_repaired)
            n += snprintf(inner + n, sizeof(inner) - (size_t)n, ",\"repairedBytes\":%" PRIu64,
                          a->start_repaired);
        struct written w;
        if (write_record_locked(a, "start", inner, (size_t)n, &w, err, errlen) < 0)
            return -1;
        a->start_pending = false;
    }
    return 0;
}

// ---- reading the tail of an existing log ----

struct tail {
    bool found;
    struct chain_record last;
    uint64_t good_end; // offset just past the last complete line
};

// Finds the last complete line of a file of size bytes and parses its chain members.
static int
scan_tail(const char *path, uint64_t size, struct tail *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (size == 0)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        chain_seterr(err, errlen, "audit log %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    char *buf = NULL;
    for (uint64_t window = 65536;; window *= 2) {
        if (window > size)
            window = size;
        uint64_t off = size - window;
        free(buf);
        buf = xmalloc(window);
        if (pread(fd, buf, window, (off_t)off) != (ssize_t)window) {
            chain_seterr(err, errlen, "audit log %s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        char *nl = memrchr(buf, '\n', window);
        if (nl == NULL && off > 0)
            continue;
        if (nl == NULL) { // only an incomplete line
            rc = 0;
            goto out;
        }
        size_t end = (size_t)(nl - buf);
        char *start = memrchr(buf, '\n', end);
        if (start == NULL && off > 0)
            continue;
        start = start ? start + 1 : buf;
        t->good_end = off + end + 1;
        size_t body_len;
        char msg[160];
        if (chain_parse_line(start, (size_t)(nl - start), &t->last, &body_len, msg, sizeof(msg)) <
            0) {
            chain_seterr(err, errlen,
                         "audit log %s: the last record is damaged (%s); check it with "
                         "`tableguard audit verify` and move the file aside",
                         path, msg);
            goto out;
        }
        t->found = true;
        rc = 0;
        goto out;
    }
out:
    free(buf);
    close(fd);
    return rc;
}

// Reads the existing log (or FILE.1 after a crash mid-rotation) to continue its chain.
static int
continue_chain(struct audit *a, char *err, size_t errlen)
{
    struct tail t;
    if (scan_tail(a->path, a->size, &t, err, errlen) < 0)
        return -1;
    if (t.good_end < a->size) {
        if (ftruncate(a->fd, (off_t)t.good_end) < 0 || fdatasync(a->fd) < 0) {
            chain_seterr(err, errlen, "audit log %s: cannot cut off an incomplete last record: %s",
                         a->path, strerror(errno));
            return -1;
        }
        a->start_repaired = a->size - t.good_end;
        a->size = t.good_end;
    }
    if (!t.found) {
        char older[PATH_MAX];
        struct stat st;
        rotated_name(a, 1, older, sizeof(older));
        if (stat(older, &st) == 0 && S_ISREG(st.st_mode) &&
            scan_tail(older, (uint64_t)st.st_size, &t, err, errlen) < 0)
            return -1;
    }
    if (t.found) {
        a->seq = t.last.seq;
        memcpy(a->prev, t.last.hash, sizeof(a->prev));
        a->start_after = strcmp(t.last.event, "stop") == 0     ? "stop"
                         : strcmp(t.last.event, "rotate") == 0 ? "rotate"
                                                               : "unclean";
    }
    return 0;
}

// ---- the public writer ----

static void *
batcher_main(void *arg)
{
    struct audit *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        // A rotated-away file first, so its records reach the disk before those that follow.
        if (a->retired_fd >= 0 || a->dir_sync_pending) {
            int fd = a->retired_fd, doomed = a->doomed_fd;
            a->retired_fd = a->doomed_fd = -1;
            a->dir_sync_pending = false;
            pthread_mutex_unlock(&a->mu);
            int e = fd >= 0 ? retire(fd) : 0;
            file_sync_dir(a->path);
            if (doomed >= 0)
                close(doomed);
            pthread_mutex_lock(&a->mu);
            if (e)
                a->batch_errno = e;
            continue;
        }
        if (a->stopping)
            break;
        struct timespec until = mono_at(mono_now() + BATCH_INTERVAL_MS / 1000.0);
        pthread_cond_timedwait(&a->tick_cv, &a->mu, &until);
        if (a->retired_fd >= 0)
            continue; // handed over while waiting: its records go to the disk first
        if (a->fd >= 0 && a->regular && a->written_gen > a->synced_gen &&
            sync_locked(a, a->written_gen, NULL, 0) < 0)
            a->batch_errno = a->failed_errno;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

struct audit *
audit_open(const struct audit_options *o, char *err, size_t errlen)
{
    if (o == NULL || o->path == NULL || o->path[0] == '\0') {
        chain_seterr(err, errlen, "audit log: no path");
        return NULL;
    }
    if (o->max_size && o->max_files < 1) {
        chain_seterr(err, errlen, "audit log: rotation by size needs at least one rotated file");
        return NULL;
    }
    struct audit *a = xcalloc(1, sizeof(*a));
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->synced_cv, NULL);
    mono_cond_init(&a->tick_cv);
    pthread_mutex_init(&a->qmu, NULL);
    pthread_cond_init(&a->q_cv, NULL);
    a->fd = -1;
    a->retired_fd = a->doomed_fd = -1;
    a->watch_fd = a->watch_wd = -1;
    a->sync = o->sync;
    a->max_size = o->max_size;
    a->max_files = o->max_files;
    a->copy_stdout = o->copy_stdout && strcmp(o->path, "-") != 0;
    a->path = xstrdup(o->path);
    a->replica = xstrdup(o->replica ? o->replica : "");
    struct jsonw quoted = {0};
    jsonw_str(&quoted, a->replica);
    a->replica_json = quoted.buf;
    a->replica_json_len = quoted.len;
    memcpy(a->prev, CHAIN_GENESIS, sizeof(a->prev));
    a->start_after = "new";
    a->start_pending = true;
    if (o->hmac_key_path && chain_load_key(&a->chain, o->hmac_key_path, err, errlen) < 0)
        goto fail;
    if (strcmp(o->path, "-") == 0) {
        a->fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        if (a->fd < 0) {
            chain_seterr(err, errlen, "audit log: stdout: %s", strerror(errno));
            goto fail;
        }
        a->regular = false;
        a->max_size = 0;
    } else {
        if (open_file(a, err, errlen) < 0)
            goto fail;
        if (a->regular && continue_chain(a, err, errlen) < 0)
            goto fail;
        if (!a->regular)
            a->max_size = 0;
        file_sync_dir(a->path);
    }
    if (a->sync == AUDIT_SYNC_BATCH) {
        if (pthread_create(&a->batcher, NULL, batcher_main, a) != 0) {
            chain_seterr(err, errlen, "audit log: cannot start the fsync thread");
            goto fail;
        }
        a->has_batcher = true;
    }
    // A log that cannot be written yet (disk full) still opens: each append reports it.
    pthread_mutex_lock(&a->mu);
    char ignored[256];
    if (prepare_locked(a, 0, true, ignored, sizeof(ignored)) < 0 ||
        (a->sync == AUDIT_SYNC_ALWAYS && sync_locked(a, a->written_gen, NULL, 0) < 0))
        atomic_fetch_add(&a->write_errors, 1);
    a->ready = true;
    pthread_mutex_unlock(&a->mu);
    return a;
fail:
    audit_close(a);
    return NULL;
}

int
audit_append_text(struct audit *a, const char *record, size_t len, struct audit_written *out,
                  char *err, size_t errlen)
{
    if (a == NULL || !is_record(record, len)) {
        chain_seterr(err, errlen, "audit log: no record");
        return -1;
    }
    struct written w;
    pthread_mutex_lock(&a->mu);
    int rc = prepare_locked(a, len + LINE_OVERHEAD + CHAIN_HASH_TAIL_LEN, true, err, errlen);
    if (rc == 0)
        rc = write_record_locked(a, "decision", record + 1, len - 2, &w, err, errlen);
    if (rc == 0 && a->sync == AUDIT_SYNC_ALWAYS)
        rc = sync_locked(a, w.gen, err, errlen);
    if (rc < 0)
        snprintf(a->failure, sizeof a->failure, "%s", err);
    atomic_store(&a->failing, rc < 0);
    pthread_mutex_unlock(&a->mu);
    if (rc < 0) {
        atomic_fetch_add(&a->write_errors, 1);
        return -1;
    }
    atomic_fetch_add(&a->records, 1);
    if (out != NULL) {
        out->seq = w.seq;
        memcpy(out->hash, w.hash, sizeof(out->hash));
    }
    return 0;
}

// ---- the writer's thread: the records the server submits, written in groups ----

// Writes a group of records in their order, each checked and chained as audit_append_text
// does, their lines with one write(2) (an earlier one when a rotation or reopen comes between
// two, so that each line lands in its file), then for "always" one fdatasync for them all;
// then tells each its result.
static void
write_group(struct audit *a, struct audit_pending *list)
{
    pthread_mutex_lock(&a->mu);
    a->grp_unflushed = list;
    bool look = true;
    for (struct audit_pending *p = list; p != NULL; p = p->next) {
        a->grp_cur = p;
        p->buffered = false;
        p->rc = 0;
        struct written w;
        if (!is_record(p->record, p->len)) {
            p->rc = -1;
            snprintf(p->err, sizeof p->err, "audit log: no record");
            continue;
        }
        if (prepare_locked(a, p->len + LINE_OVERHEAD + CHAIN_HASH_TAIL_LEN, look, p->err,
                           sizeof p->err) < 0 ||
            format_locked(a, "decision", p->record + 1, p->len - 2, &w, p->err, sizeof p->err) <
                0) {
            p->rc = -1;
            continue;
        }
        look = false;
        p->buffered = true;
        p->gen = w.gen;
        p->out.seq = w.seq;
        memcpy(p->out.hash, w.hash, sizeof(p->out.hash));
    }
    a->grp_cur = NULL;
    char err[256];
    (void)flush_locked(a, err, sizeof err);
    a->grp_unflushed = NULL;
    int last = 0;
    for (struct audit_pending *p = list; p != NULL; p = p->next) {
        // The first waits for one fdatasync covering the group; the others find it done.
        if (p->rc == 0 && a->sync == AUDIT_SYNC_ALWAYS)
            p->rc = sync_locked(a, p->gen, p->err, sizeof p->err);
        if (p->rc < 0) {
            snprintf(a->failure, sizeof a->failure, "%s", p->err);
            atomic_fetch_add(&a->write_errors, 1);
        } else {
            atomic_fetch_add(&a->records, 1);
        }
        last = p->rc;
    }
    atomic_store(&a->failing, last < 0);
    pthread_mutex_unlock(&a->mu);
    for (struct audit_pending *p = list, *next; p != NULL; p = next) {
        next = p->next;
        p->done(p);
    }
}

static void *
writer_main(void *arg)
{
    struct audit *a = arg;
    pthread_mutex_lock(&a->qmu);
    for (;;) {
        while (a->q_head == NULL && !a->q_stop) {
            a->writer_waiting = true;
            pthread_cond_wait(&a->q_cv, &a->qmu);
        }
        a->writer_waiting = false;
        if (a->q_head == NULL)
            break;
        struct audit_pending *list = a->q_head;
        a->q_head = a->q_tail = NULL;
        pthread_mutex_unlock(&a->qmu);
        write_group(a, list);
        pthread_mutex_lock(&a->qmu);
    }
    pthread_mutex_unlock(&a->qmu);
    return NULL;
}

void
audit_submit(struct audit *a, struct audit_pending *p)
{
    p->next = NULL;
    p->buffered = false;
    pthread_mutex_lock(&a->qmu);
    if (!a->has_writer && !a->q_stop && pthread_create(&a->writer, NULL, writer_main, a) == 0)
        a->has_writer = true;
    if (!a->has_writer || a->q_stop) {
        // No thread (none could be started, or the log is closing): written here.
        pthread_mutex_unlock(&a->qmu);
        write_group(a, p);
        return;
    }
    if (a->q_tail != NULL)
        a->q_tail->next = p;
    else
        a->q_head = p;
    a->q_tail = p;
    // One wake-up for the records queued while the writer sleeps.
    bool wake = a->writer_waiting;
    a->writer_waiting = false;
    pthread_mutex_unlock(&a->qmu);
    if (wake)
        pthread_cond_signal(&a->q_cv);
}

bool
audit_groups(const struct audit *a)
{
    return a != NULL && a->sync == AUDIT_SYNC_ALWAYS;
}

int
audit_append(struct audit *a, cJSON *record, struct audit_written *out, char *err, size_t errlen)
{
    static const char *const reserved[] = {"time", "seq", "replica", "event", "prev", "hash"};
    if (a == NULL || !cJSON_IsObject(record)) {
        chain_seterr(err, errlen, "audit log: no record");
        return -1;
    }
    // One pass over the members, not one lookup per reserved name.
    for (cJSON *m = record->child, *next; m != NULL; m = next) {
        next = m->next;
        for (size_t i = 0; m->string && i < sizeof(reserved) / sizeof(reserved[0]); i++)
            if (strcmp(m->string, reserved[i]) == 0) {
                cJSON_Delete(cJSON_DetachItemViaPointer(record, m));
                break;
            }
    }
    char *text = cJSON_PrintUnformatted(record);
    if (text == NULL) {
        atomic_fetch_add(&a->write_errors, 1);
        chain_seterr(err, errlen, "audit log: cannot serialise the record");
        return -1;
    }
    int rc = audit_append_text(a, text, strlen(text), out, err, errlen);
    cJSON_free(text);
    return rc;
}

void
audit_stats(const struct audit *a, uint64_t *records, uint64_t *write_errors)
{
    if (records)
        *records = a ? atomic_load(&a->records) : 0;
    if (write_errors)
        *write_errors = a ? atomic_load(&a->write_errors) : 0;
}

void
audit_close(struct audit *a)
{
    if (a == NULL)
        return;
    // The records submitted first: the writer empties its queue before it stops.
    pthread_mutex_lock(&a->qmu);
    a->q_stop = true;
    pthread_cond_signal(&a->q_cv);
    pthread_mutex_unlock(&a->qmu);
    if (a->has_writer)
        pthread_join(a->writer, NULL);
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->tick_cv);
    pthread_mutex_unlock(&a->mu);
    if (a->has_batcher)
        pthread_join(a->batcher, NULL);
    pthread_mutex_lock(&a->mu);
    while (a->syncing)
        pthread_cond_wait(&a->synced_cv, &a->mu);
    if (a->ready && a->fd >= 0) {
        char ignored[256];
        struct written w;
        if (prepare_locked(a, 0, true, ignored, sizeof(ignored)) == 0 &&
            write_record_locked(a, "stop", "", 0, &w, ignored, sizeof(ignored)) == 0 && a->regular)
            (void)fdatasync(a->fd);
    }
    pthread_mutex_unlock(&a->mu);
    if (a->retired_fd >= 0)
        (void)retire(a->retired_fd);
    if (a->doomed_fd >= 0)
        close(a->doomed_fd);
    if (a->fd >= 0)
        close(a->fd);
    if (a->watch_fd >= 0)
        close(a->watch_fd);
    chain_free(&a->chain);
    pthread_cond_destroy(&a->tick_cv);
    pthread_cond_destroy(&a->synced_cv);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->q_cv);
    pthread_mutex_destroy(&a->qmu);
    free(a->path);
    free(a->replica);
    free(a->replica_json);
    free(a->out);
    free(a);
}

void
audit_reopen(struct audit *a)
{
    if (a != NULL)
        atomic_store(&a->reopen, true);
}

int
audit_writable(struct audit *a, char *why, size_t whylen)
{
    if (a == NULL || !atomic_load(&a->failing))
        return 0;
    // Nothing is appended while readiness fails, so the check itself tries again: it writes
    // the pending "start" record (a gap in the log is marked), or finds the file writable.
    pthread_mutex_lock(&a->mu);
    char err[256] = "";
    a->start_after = "write-failure";
    a->start_pending = true;
    int rc = prepare_locked(a, 0, true, err, sizeof err);
    if (rc < 0)
        snprintf(a->failure, sizeof a->failure, "%s", err);
    atomic_store(&a->failing, rc < 0);
    snprintf(why, whylen, "%s", rc < 0 ? a->failure : "");
    pthread_mutex_unlock(&a->mu);
    return rc;
}

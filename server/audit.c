// SPDX-License-Identifier: Apache-2.0
// The audit log: hash-chained JSON lines with group-committed fsync, rotation and a verifier.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define HASH_HEX 64
/* The fixed tail of every line: ,"hash":"<64 hex>"} */
#define HASH_PREFIX ",\"hash\":\""
#define HASH_TAIL_LEN (sizeof(HASH_PREFIX) - 1 + HASH_HEX + 2)
#define GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
#define KEY_MAX 4096
#define KEY_MIN 16
/* Room for the members the module adds around the caller's: time, seq, replica (counted
 * apart), event, prev; at most 167 bytes with a 20-digit seq. */
#define LINE_OVERHEAD 200
/*
 * batch: how often the background thread fsyncs. Every 100 ms rather than every second: the same
 * writeback in smaller pieces, so the requests sharing the core wait less behind it (make bench,
 * 1 component: p99.9 3-6 ms against 5-9 ms) and a host crash loses less.
 */
#ifndef BATCH_INTERVAL_MS
#define BATCH_INTERVAL_MS 100
#endif
/* Line and serialisation buffers up to this size are kept for the next record. */
#define LINE_KEEP_MAX (256 * 1024)

struct chain {
    EVP_MAC_CTX *mac; /* keyed template, duplicated per digest; NULL: plain SHA-256 */
    /* Plain SHA-256: fetched once and reused, since an implicit fetch per record costs more
     * than hashing a short line. Used by one thread at a time (the writer holds its lock). */
    EVP_MD *md;
    EVP_MD_CTX *ctx;
};

struct parsed {
    uint64_t seq;
    char prev[HASH_HEX + 1];
    char hash[HASH_HEX + 1];
    char event[16];
};

struct written {
    char time[32];
    uint64_t seq;
    char prev[HASH_HEX + 1];
    char hash[HASH_HEX + 1];
    uint64_t gen;
};

struct audit {
    pthread_mutex_t mu;
    pthread_cond_t synced_cv; /* a leader's fsync finished */
    pthread_cond_t tick_cv;   /* wakes the batch thread early (close) */
    pthread_t batcher;
    bool has_batcher, stopping;
    bool ready; /* audit_open finished: audit_close writes a "stop" record */

    char *path;
    bool regular; /* a regular file: fsync, truncate-on-failure and rotation apply */
    int fd;       /* -1 after a failed rotation; the next append reopens */
    enum audit_sync sync;
    uint64_t max_size;
    unsigned max_files;
    char *replica;      /* plain */
    char *replica_json; /* quoted and escaped */
    struct chain chain;
    time_t time_sec;    /* the second time_text shows */
    char time_text[24]; /* YYYY-MM-DDTHH:MM:SS of time_sec */
    size_t time_len;
    char *line;      /* the line being written, reused from record to record */
    size_t line_cap; /* its allocated size */

    uint64_t seq;            /* seq of the last record written */
    char prev[HASH_HEX + 1]; /* hash of the last record written */
    uint64_t size;           /* bytes of complete records in the current file */
    bool damaged;            /* a failed write left bytes that could not be cut off */
    bool start_pending;      /* the "start" record is still to be written */
    const char *start_after; /* what the start record says preceded it */
    uint64_t start_repaired; /* bytes of an incomplete line cut off at open */

    uint64_t written_gen;          /* records written (write(2) done) into the log */
    uint64_t synced_gen;           /* records known to be on stable storage */
    uint64_t failed_lo, failed_hi; /* records in (lo, hi] were covered by a failed fsync */
    int failed_errno;
    bool syncing; /* a leader is in fsync outside the lock */
    int batch_errno;
    /* batch: a file rotated away, for the batch thread to fsync and close off the request path
     * (-1: none), and whether the directory's renames still need an fsync. */
    int retired_fd;
    bool dir_sync_pending;
    /* batch: the oldest rotated file, which the rotation's renames removed, held open so that
     * freeing its blocks happens when the batch thread closes it (-1: none) */
    int doomed_fd;

    _Atomic uint64_t records, write_errors;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

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

/* ---- the chain: key, digest, line format ---- */

static int
chain_load_key(struct chain *c, const char *path, char *err, size_t errlen)
{
    unsigned char key[KEY_MAX + 2];
    int rc = -1;
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(key, 1, sizeof(key), f);
    bool bad = ferror(f);
    fclose(f);
    /* A trailing newline from `echo` or an editor is not part of the key. */
    while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
        n--;
    if (bad || n > KEY_MAX || n < KEY_MIN) {
        seterr(err, errlen, "%s: an HMAC key must be %d to %d bytes", path, KEY_MIN, KEY_MAX);
        goto out;
    }
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    c->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!c->mac || !EVP_MAC_init(c->mac, key, n, params)) {
        EVP_MAC_CTX_free(c->mac);
        c->mac = NULL;
        seterr(err, errlen, "%s: cannot set up HMAC-SHA256", path);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

static void
chain_free(struct chain *c)
{
    EVP_MAC_CTX_free(c->mac);
    c->mac = NULL;
    EVP_MD_CTX_free(c->ctx);
    c->ctx = NULL;
    EVP_MD_free(c->md);
    c->md = NULL;
}

static void
hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Digest of data as 64 lowercase hex digits: HMAC-SHA256 with a key, else SHA-256. */
static int
chain_digest(struct chain *c, const char *data, size_t len, char out[HASH_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t mdlen = 0;
    if (c->mac) {
        EVP_MAC_CTX *m = EVP_MAC_CTX_dup(c->mac);
        int ok = m && EVP_MAC_update(m, (const unsigned char *)data, len) &&
                 EVP_MAC_final(m, md, &mdlen, sizeof(md));
        EVP_MAC_CTX_free(m);
        if (!ok)
            return -1;
    } else {
        unsigned int l = 0;
        if (c->ctx == NULL) {
            c->md = EVP_MD_fetch(NULL, "SHA256", NULL);
            c->ctx = c->md ? EVP_MD_CTX_new() : NULL;
        }
        if (c->ctx == NULL || !EVP_DigestInit_ex2(c->ctx, c->md, NULL) ||
            !EVP_DigestUpdate(c->ctx, data, len) || !EVP_DigestFinal_ex(c->ctx, md, &l))
            return -1;
        mdlen = l;
    }
    if (mdlen != HASH_HEX / 2)
        return -1;
    hex(md, mdlen, out);
    return 0;
}

static bool
is_hex64(const char *s, size_t n)
{
    if (n != HASH_HEX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/*
 * Splits a line (without its newline) into the hashed body and the hash, and reads the chain
 * members. The body is the line with its trailing ,"hash":"..." member removed; it is written
 * into line itself (len - HASH_TAIL_LEN + 1 bytes, the closing brace moved up). Returns 0, or -1
 * with a message for the reader.
 */
static int
parse_line(char *line, size_t len, struct parsed *p, size_t *body_len, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (len < HASH_TAIL_LEN + 2 || line[0] != '{' || line[len - 1] != '}' || line[len - 2] != '"' ||
        memcmp(line + len - HASH_TAIL_LEN, HASH_PREFIX, sizeof(HASH_PREFIX) - 1) != 0 ||
        !is_hex64(line + len - HASH_HEX - 2, HASH_HEX)) {
        seterr(err, errlen, "record does not end with a \"hash\" member of 64 hex digits");
        return -1;
    }
    memcpy(p->hash, line + len - HASH_HEX - 2, HASH_HEX);
    *body_len = len - HASH_TAIL_LEN + 1;
    line[*body_len - 1] = '}';
    cJSON *j = cJSON_ParseWithLength(line, *body_len);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(j, "prev");
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(j, "event");
    bool ok = cJSON_IsObject(j) && cJSON_IsNumber(seq) && seq->valuedouble >= 1 &&
              seq->valuedouble <= 9007199254740992.0 &&
              seq->valuedouble == (double)(uint64_t)seq->valuedouble && cJSON_IsString(prev) &&
              is_hex64(prev->valuestring, strlen(prev->valuestring));
    if (ok) {
        p->seq = (uint64_t)seq->valuedouble;
        memcpy(p->prev, prev->valuestring, HASH_HEX);
        if (cJSON_IsString(event))
            snprintf(p->event, sizeof(p->event), "%s", event->valuestring);
    }
    cJSON_Delete(j);
    if (!ok) {
        seterr(err, errlen,
               "record is not a JSON object with a numeric \"seq\" and a \"prev\" hash");
        return -1;
    }
    return 0;
}

/* ---- writing ---- */

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

static void
fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int d = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        (void)fsync(d);
        close(d);
    }
    free(copy);
}

/* Now as RFC 3339 UTC with milliseconds. The date and time to the second are formatted once a
 * second, not once a record; called under the lock. */
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

/*
 * A failed write may have left part of a line. Cut the file back to the last complete record so
 * that later records still verify; if that is impossible the log stays damaged and every append
 * fails until a cut succeeds.
 */
static void
cut_partial(struct audit *a)
{
    if (!a->regular) {
        /* A pipe or device cannot be cut; a partial line there shows up in verification. */
        return;
    }
    a->damaged = ftruncate(a->fd, (off_t)a->size) != 0;
}

/*
 * Writes the next record of the chain: event and the caller's members (inner, without braces),
 * under the lock. On success advances seq and prev and fills w; on failure leaves the chain as it
 * was.
 */
static int
write_record_locked(struct audit *a, const char *event, const char *inner, size_t inner_len,
                    struct written *w, char *err, size_t errlen)
{
    if (a->damaged) {
        cut_partial(a);
        if (a->damaged) {
            seterr(err, errlen, "audit log %s: cannot cut off a partial record: %s", a->path,
                   strerror(errno));
            return -1;
        }
    }
    size_t cap = inner_len + strlen(a->replica_json) + LINE_OVERHEAD + HASH_TAIL_LEN;
    if (cap > a->line_cap) {
        char *grown = realloc(a->line, cap);
        if (!grown) {
            seterr(err, errlen, "audit log: out of memory");
            return -1;
        }
        a->line = grown;
        a->line_cap = cap;
    }
    char *line = a->line;
    format_time(a, w->time);
    w->seq = a->seq + 1;
    memcpy(w->prev, a->prev, sizeof(w->prev));
    int n = snprintf(line, cap,
                     "{\"time\":\"%s\",\"seq\":%" PRIu64 ",\"replica\":%s,\"event\":\"%s\"%s",
                     w->time, w->seq, a->replica_json, event, inner_len ? "," : "");
    size_t len = (size_t)n;
    memcpy(line + len, inner, inner_len);
    len += inner_len;
    len += put(line + len, ",\"prev\":\"", 9);
    len += put(line + len, w->prev, HASH_HEX);
    len += put(line + len, "\"}", 2);
    if (chain_digest(&a->chain, line, len, w->hash) < 0) {
        seterr(err, errlen, "audit log: digest failed");
        return -1;
    }
    len--; /* replace the closing brace by the hash member */
    len += put(line + len, HASH_PREFIX, sizeof(HASH_PREFIX) - 1);
    len += put(line + len, w->hash, HASH_HEX);
    len += put(line + len, "\"}\n", 3);
    int rc = write_all(a->fd, line, len);
    int e = errno;
    if (a->line_cap > LINE_KEEP_MAX) {
        /* A rare huge record (a 1000-component review) does not pin its buffer for good. */
        free(a->line);
        a->line = NULL;
        a->line_cap = 0;
    }
    if (rc < 0) {
        cut_partial(a);
        seterr(err, errlen, "audit log %s: write: %s", a->path, strerror(e));
        return -1;
    }
    a->seq = w->seq;
    memcpy(a->prev, w->hash, sizeof(a->prev));
    a->size += len;
    w->gen = ++a->written_gen;
    if (!a->regular)
        a->synced_gen = a->written_gen; /* nothing to fsync on a pipe or device */
    return 0;
}

/*
 * After a failed fsync the kernel may have dropped those pages: every record written since the
 * last good fsync is reported as failed to its waiter, even if a later fsync succeeds.
 */
static void
mark_sync_failed(struct audit *a, uint64_t target, int e)
{
    if (a->failed_hi == 0)
        a->failed_lo = a->synced_gen;
    if (target > a->failed_hi)
        a->failed_hi = target;
    a->failed_errno = e;
}

/*
 * Group commit: waits until record gen is on stable storage. The first waiter becomes the leader
 * and fsyncs outside the lock for everything written so far; the others wait for its result, so
 * a burst of concurrent appends costs one fsync instead of one each.
 */
static int
sync_locked(struct audit *a, uint64_t gen, char *err, size_t errlen)
{
    for (;;) {
        if (gen > a->failed_lo && gen <= a->failed_hi) {
            seterr(err, errlen, "audit log %s: fsync: %s", a->path, strerror(a->failed_errno));
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

static int
open_file(struct audit *a, char *err, size_t errlen)
{
    a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    struct stat st;
    if (a->fd < 0 || fstat(a->fd, &st) < 0) {
        seterr(err, errlen, "audit log %s: %s", a->path, strerror(errno));
        if (a->fd >= 0)
            close(a->fd);
        a->fd = -1;
        return -1;
    }
    a->regular = S_ISREG(st.st_mode);
    a->size = a->regular ? (uint64_t)st.st_size : 0;
    return 0;
}

static void
rotated_name(const struct audit *a, unsigned i, char *out, size_t n)
{
    snprintf(out, n, "%s.%u", a->path, i);
}

/* Fsyncs and closes a file rotated away; returns 0 or an errno. */
static int
retire(int fd)
{
    int e = fdatasync(fd) < 0 ? errno : 0;
    close(fd);
    return e;
}

/*
 * Seals the current file with a "rotate" record, shifts FILE.i to FILE.i+1 (the oldest falls
 * off), renames FILE to FILE.1 and opens a fresh FILE. The chain simply continues: the next
 * record's prev is the rotate record's hash. Called with the lock held and no leader in fsync.
 *
 * How the sealed file reaches the disk follows the sync mode. always: it is fsynced here, before
 * any record goes to the new file. batch: the batch thread fsyncs it (then the directory) within
 * its usual interval, so a rotation does not stall the requests behind the lock for the flush of
 * a whole file. none: nothing is fsynced.
 */
static int
rotate_locked(struct audit *a, char *err, size_t errlen)
{
    struct written w;
    if (write_record_locked(a, "rotate", "", 0, &w, err, errlen) < 0)
        return -1;
    if (a->sync == AUDIT_SYNC_ALWAYS) {
        if (fdatasync(a->fd) < 0) {
            mark_sync_failed(a, a->written_gen, errno);
            seterr(err, errlen, "audit log %s: fsync: %s", a->path, strerror(errno));
            return -1;
        }
        a->synced_gen = a->written_gen;
        close(a->fd);
    } else if (a->sync == AUDIT_SYNC_BATCH && a->has_batcher) {
        if (a->retired_fd >= 0) {
            /* The batch thread has not reached the previous one yet (two rotations within its
             * interval): flush that one here. */
            int e = retire(a->retired_fd);
            if (e)
                a->batch_errno = e;
        }
        a->retired_fd = a->fd;
    } else {
        close(a->fd);
    }
    a->fd = -1;
    char from[PATH_MAX], to[PATH_MAX];
    if (a->sync == AUDIT_SYNC_BATCH && a->has_batcher && a->doomed_fd < 0) {
        rotated_name(a, a->max_files, from, sizeof(from));
        a->doomed_fd = open(from, O_RDONLY | O_CLOEXEC);
    }
    for (unsigned i = a->max_files; i > 1; i--) {
        rotated_name(a, i - 1, from, sizeof(from));
        rotated_name(a, i, to, sizeof(to));
        if (rename(from, to) < 0 && errno != ENOENT)
            break; /* keep going: a gap in the numbers only costs an old file */
    }
    rotated_name(a, 1, to, sizeof(to));
    /* If the rename fails the records simply continue in FILE after its rotate record. */
    (void)rename(a->path, to);
    if (open_file(a, err, errlen) < 0)
        return -1;
    if (a->sync == AUDIT_SYNC_ALWAYS)
        fsync_dir(a->path);
    else if (a->sync == AUDIT_SYNC_BATCH) {
        a->dir_sync_pending = true;
        pthread_cond_broadcast(&a->tick_cv);
    }
    return 0;
}

/* Makes the log ready for a record of about len bytes: reopen, start record, rotation. */
static int
prepare_locked(struct audit *a, size_t len, char *err, size_t errlen)
{
    if (a->batch_errno) {
        seterr(err, errlen, "audit log %s: background fsync: %s", a->path,
               strerror(a->batch_errno));
        a->batch_errno = 0;
        return -1;
    }
    if (a->fd < 0 && open_file(a, err, errlen) < 0)
        return -1;
    while (a->max_size && a->regular && a->size > 0 && a->size + len > a->max_size) {
        if (a->syncing) {
            /* The leader's fd must stay open until its fsync returns. */
            pthread_cond_wait(&a->synced_cv, &a->mu);
            continue;
        }
        if (rotate_locked(a, err, errlen) < 0)
            return -1;
    }
    if (a->start_pending) {
        char inner[160];
        int n = snprintf(inner, sizeof(inner), "\"chain\":\"%s\",\"after\":\"%s\"",
                         a->chain.mac ? "hmac-sha256" : "sha256", a->start_after);
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

/* ---- reading the tail of an existing log ---- */

struct tail {
    bool found;
    struct parsed last;
    uint64_t good_end; /* offset just past the last complete line */
};

/* Finds the last complete line of a file of size bytes and parses its chain members. */
static int
scan_tail(const char *path, uint64_t size, struct tail *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (size == 0)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, errlen, "audit log %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    char *buf = NULL;
    for (uint64_t window = 65536;; window *= 2) {
        if (window > size)
            window = size;
        uint64_t off = size - window;
        free(buf);
        buf = malloc(window);
        if (!buf || pread(fd, buf, window, (off_t)off) != (ssize_t)window) {
            seterr(err, errlen, "audit log %s: cannot read: %s", path, strerror(errno));
            goto out;
        }
        char *nl = memrchr(buf, '\n', window);
        if (!nl && off > 0)
            continue;
        if (!nl) { /* only an incomplete line */
            rc = 0;
            goto out;
        }
        size_t end = (size_t)(nl - buf);
        char *start = memrchr(buf, '\n', end);
        if (!start && off > 0)
            continue;
        start = start ? start + 1 : buf;
        t->good_end = off + end + 1;
        size_t body_len;
        char msg[160];
        if (parse_line(start, (size_t)(nl - start), &t->last, &body_len, msg, sizeof(msg)) < 0) {
            seterr(err, errlen,
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

/* Reads the existing log (or FILE.1 after a crash mid-rotation) to continue its chain. */
static int
continue_chain(struct audit *a, char *err, size_t errlen)
{
    struct tail t;
    if (scan_tail(a->path, a->size, &t, err, errlen) < 0)
        return -1;
    if (t.good_end < a->size) {
        if (ftruncate(a->fd, (off_t)t.good_end) < 0 || fdatasync(a->fd) < 0) {
            seterr(err, errlen, "audit log %s: cannot cut off an incomplete last record: %s",
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

/* ---- the public writer ---- */

static void *
batcher_main(void *arg)
{
    struct audit *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        /* A rotated-away file first, so its records reach the disk before those that follow. */
        if (a->retired_fd >= 0 || a->dir_sync_pending) {
            int fd = a->retired_fd, doomed = a->doomed_fd;
            a->retired_fd = a->doomed_fd = -1;
            a->dir_sync_pending = false;
            pthread_mutex_unlock(&a->mu);
            int e = fd >= 0 ? retire(fd) : 0;
            fsync_dir(a->path);
            if (doomed >= 0)
                close(doomed);
            pthread_mutex_lock(&a->mu);
            if (e)
                a->batch_errno = e;
            continue;
        }
        if (a->stopping)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)BATCH_INTERVAL_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&a->tick_cv, &a->mu, &until);
        if (a->fd >= 0 && a->regular && a->written_gen > a->synced_gen &&
            sync_locked(a, a->written_gen, NULL, 0) < 0)
            a->batch_errno = a->failed_errno;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static char *
json_quote(const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    char *out = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return out;
}

struct audit *
audit_open(const struct audit_options *o, char *err, size_t errlen)
{
    if (!o || !o->path || !*o->path) {
        seterr(err, errlen, "audit log: no path");
        return NULL;
    }
    if (o->max_size && o->max_files < 1) {
        seterr(err, errlen, "audit log: rotation by size needs at least one rotated file");
        return NULL;
    }
    struct audit *a = calloc(1, sizeof(*a));
    if (!a) {
        seterr(err, errlen, "audit log: out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->synced_cv, NULL);
    pthread_cond_init(&a->tick_cv, NULL);
    a->fd = -1;
    a->retired_fd = a->doomed_fd = -1;
    a->sync = o->sync;
    a->max_size = o->max_size;
    a->max_files = o->max_files;
    a->path = strdup(o->path);
    a->replica = strdup(o->replica ? o->replica : "");
    a->replica_json = json_quote(a->replica);
    memcpy(a->prev, GENESIS, sizeof(a->prev));
    a->start_after = "new";
    a->start_pending = true;
    if (!a->path || !a->replica || !a->replica_json) {
        seterr(err, errlen, "audit log: out of memory");
        goto fail;
    }
    if (o->hmac_key_path && chain_load_key(&a->chain, o->hmac_key_path, err, errlen) < 0)
        goto fail;
    if (strcmp(o->path, "-") == 0) {
        a->fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        if (a->fd < 0) {
            seterr(err, errlen, "audit log: stdout: %s", strerror(errno));
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
        fsync_dir(a->path);
    }
    if (a->sync == AUDIT_SYNC_BATCH) {
        if (pthread_create(&a->batcher, NULL, batcher_main, a) != 0) {
            seterr(err, errlen, "audit log: cannot start the fsync thread");
            goto fail;
        }
        a->has_batcher = true;
    }
    /* A log that cannot be written yet (disk full) still opens: each append reports it. */
    pthread_mutex_lock(&a->mu);
    char ignored[256];
    if (prepare_locked(a, 0, ignored, sizeof(ignored)) < 0 ||
        (a->sync == AUDIT_SYNC_ALWAYS && sync_locked(a, a->written_gen, NULL, 0) < 0))
        atomic_fetch_add(&a->write_errors, 1);
    a->ready = true;
    pthread_mutex_unlock(&a->mu);
    return a;
fail:
    audit_close(a);
    return NULL;
}

/*
 * The record's text goes into a buffer of the calling thread kept from record to record: a
 * record is printed on every request, and printing into a fresh allocation that grows by copies
 * cost more than the print. The buffer is freed when its thread exits.
 */
struct print_buf {
    char *buf;
    size_t cap;
};

static pthread_key_t print_key;
static pthread_once_t print_once = PTHREAD_ONCE_INIT;

static void
print_buf_free(void *p)
{
    struct print_buf *pb = p;
    free(pb->buf);
    free(pb);
}

static void
print_key_create(void)
{
    (void)pthread_key_create(&print_key, print_buf_free);
}

/*
 * Prints record. Returns its text (NUL-terminated, length in *len) and sets *owned when the
 * caller must free it (a record too large for the thread's buffer), or returns NULL.
 */
static char *
print_record(const cJSON *record, size_t *len, bool *owned)
{
    pthread_once(&print_once, print_key_create);
    struct print_buf *pb = pthread_getspecific(print_key);
    if (!pb && (pb = calloc(1, sizeof(*pb))) != NULL && pthread_setspecific(print_key, pb) != 0) {
        free(pb);
        pb = NULL;
    }
    *owned = false;
    if (pb && !pb->buf && (pb->buf = malloc(16 * 1024)) != NULL)
        pb->cap = 16 * 1024;
    if (pb && pb->buf && cJSON_PrintPreallocated((cJSON *)record, pb->buf, (int)pb->cap, 0)) {
        *len = strlen(pb->buf);
        return pb->buf;
    }
    /* Too large for the buffer: print into an allocation of the right size and keep it as the
     * thread's buffer, unless it is huge. */
    char *out = cJSON_PrintUnformatted(record);
    if (!out)
        return NULL;
    *len = strlen(out);
    if (!pb || *len + 1 > LINE_KEEP_MAX) {
        *owned = true;
        return out;
    }
    free(pb->buf);
    pb->buf = out;
    pb->cap = *len + 1;
    return out;
}

int
audit_append(struct audit *a, cJSON *record, struct audit_written *out, char *err, size_t errlen)
{
    static const char *const reserved[] = {"time", "seq", "replica", "event", "prev", "hash"};
    if (!a || !cJSON_IsObject(record)) {
        seterr(err, errlen, "audit log: no record");
        return -1;
    }
    /* One pass over the members, not one lookup per reserved name. */
    for (cJSON *m = record->child, *next; m != NULL; m = next) {
        next = m->next;
        for (size_t i = 0; m->string && i < sizeof(reserved) / sizeof(reserved[0]); i++)
            if (strcmp(m->string, reserved[i]) == 0) {
                cJSON_Delete(cJSON_DetachItemViaPointer(record, m));
                break;
            }
    }
    /* Serialise outside the lock: only the chain members need the order of the log. */
    size_t blen = 0;
    bool owned = false;
    char *body = print_record(record, &blen, &owned);
    if (!body || blen < 2 || body[0] != '{' || body[blen - 1] != '}') {
        if (owned)
            free(body);
        atomic_fetch_add(&a->write_errors, 1);
        seterr(err, errlen, "audit log: cannot serialise the record");
        return -1;
    }
    struct written w;
    pthread_mutex_lock(&a->mu);
    int rc = prepare_locked(a, blen + LINE_OVERHEAD + HASH_TAIL_LEN, err, errlen);
    if (rc == 0)
        rc = write_record_locked(a, "decision", body + 1, blen - 2, &w, err, errlen);
    if (rc == 0 && a->sync == AUDIT_SYNC_ALWAYS)
        rc = sync_locked(a, w.gen, err, errlen);
    pthread_mutex_unlock(&a->mu);
    if (owned)
        free(body);
    if (rc < 0) {
        atomic_fetch_add(&a->write_errors, 1);
        return -1;
    }
    atomic_fetch_add(&a->records, 1);
    if (out) {
        out->seq = w.seq;
        memcpy(out->hash, w.hash, sizeof(out->hash));
    }
    return 0;
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
    if (!a)
        return;
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
        if (prepare_locked(a, 0, ignored, sizeof(ignored)) == 0 &&
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
    chain_free(&a->chain);
    pthread_cond_destroy(&a->tick_cv);
    pthread_cond_destroy(&a->synced_cv);
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a->replica);
    free(a->replica_json);
    free(a->line);
    free(a);
}

/* ---- verification (the CLI) ---- */

#define CHECKPOINTS_MAX 32

struct checkpoint {
    uint64_t seq;
    char hash[HASH_HEX + 1]; /* empty: only the presence of seq is checked */
    bool seen;
};

struct verifier {
    struct chain chain;
    struct checkpoint cp[CHECKPOINTS_MAX];
    size_t ncp;
    bool have;      /* a record was seen */
    uint64_t first; /* seq of the first record seen */
    struct parsed last;
    const char *last_file;
    size_t last_line;
};

struct vfile {
    const char *name;
    uint64_t first; /* seq of its first record; 0 unreadable; UINT64_MAX empty */
    size_t order;
};

static void
verify_usage(FILE *out)
{
    fprintf(out, "usage: tableguard audit verify [--hmac-key FILE] [--checkpoint SEQ[:HASH]]... "
                 "[--sealed] FILE...\n");
}

/* Reads the seq of a file's first record so files can be given in any order. */
static int
verify_first_seq(struct vfile *f)
{
    FILE *in = fopen(f->name, "rb");
    if (!in) {
        printf("%s: cannot open: %s\n", f->name, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, in);
    struct parsed p;
    size_t body;
    f->first = UINT64_MAX;
    if (n > 0) {
        if (line[n - 1] == '\n')
            n--;
        f->first = parse_line(line, (size_t)n, &p, &body, NULL, 0) == 0 ? p.seq : 0;
    }
    free(line);
    fclose(in);
    return 0;
}

static int
vfile_cmp(const void *x, const void *y)
{
    const struct vfile *a = x, *b = y;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* Checks one line against the chain so far. Returns 0, or -1 with msg filled. */
static int
verify_line(struct verifier *v, char *line, size_t len, char *msg, size_t msglen)
{
    struct parsed p;
    size_t body;
    char digest[HASH_HEX + 1];
    if (parse_line(line, len, &p, &body, msg, msglen) < 0)
        return -1;
    if (chain_digest(&v->chain, line, body, digest) < 0) {
        seterr(msg, msglen, "digest failed");
        return -1;
    }
    if (strcmp(digest, p.hash) != 0) {
        seterr(msg, msglen, "hash mismatch: the record was modified%s",
               v->chain.mac ? " (or the HMAC key is wrong)"
                            : " (or the log is HMAC-chained: pass --hmac-key)");
        return -1;
    }
    if (v->have && p.seq != v->last.seq + 1) {
        seterr(msg, msglen,
               "seq %" PRIu64 " where %" PRIu64 " was expected: records were deleted, inserted "
               "or reordered",
               p.seq, v->last.seq + 1);
        return -1;
    }
    if (v->have && strcmp(p.prev, v->last.hash) != 0) {
        seterr(msg, msglen,
               "prev does not match the hash of seq %" PRIu64 " (%s:%zu): the chain is broken",
               v->last.seq, v->last_file, v->last_line);
        return -1;
    }
    if (!v->have && p.seq == 1 && strcmp(p.prev, GENESIS) != 0) {
        seterr(msg, msglen, "seq 1 must have the genesis prev (64 zeros)");
        return -1;
    }
    for (size_t i = 0; i < v->ncp; i++) {
        if (v->cp[i].seq != p.seq)
            continue;
        v->cp[i].seen = true;
        if (v->cp[i].hash[0] && strcmp(v->cp[i].hash, p.hash) != 0) {
            seterr(msg, msglen, "seq %" PRIu64 " has hash %s but the checkpoint says %s", p.seq,
                   p.hash, v->cp[i].hash);
            return -1;
        }
    }
    if (!v->have)
        v->first = p.seq;
    v->have = true;
    v->last = p;
    return 0;
}

/* Walks one file. more: a later file continues the chain. Returns 0 intact, 1 broken. */
static int
verify_file(struct verifier *v, const char *name, bool more)
{
    FILE *in = fopen(name, "rb");
    if (!in) {
        printf("%s: cannot open: %s\n", name, strerror(errno));
        return 1;
    }
    char *line = NULL, msg[256];
    size_t cap = 0, lineno = 0, count = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') {
            printf("%s:%zu: incomplete record without a newline: the file was truncated\n", name,
                   lineno);
            rc = 1;
            break;
        }
        if (verify_line(v, line, (size_t)n - 1, msg, sizeof(msg)) < 0) {
            printf("%s:%zu: %s\n", name, lineno, msg);
            rc = 1;
            break;
        }
        v->last_file = name;
        v->last_line = lineno;
        count++;
    }
    if (rc == 0 && ferror(in)) {
        printf("%s: read error\n", name);
        rc = 1;
    }
    if (rc == 0 && more && count > 0 && strcmp(v->last.event, "rotate") != 0) {
        printf("%s:%zu: the file ends at seq %" PRIu64 " without a rotate record: its tail was "
               "truncated\n",
               name, lineno, v->last.seq);
        rc = 1;
    }
    if (rc == 0)
        printf("%s: OK (%zu records)\n", name, count);
    free(line);
    fclose(in);
    return rc;
}

static int
parse_checkpoint(struct verifier *v, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long seq = strtoull(s, &end, 10);
    if (v->ncp == CHECKPOINTS_MAX || errno || seq == 0 || end == s || *s == '-' ||
        (*end && (*end != ':' || !is_hex64(end + 1, strlen(end + 1)))))
        return -1;
    struct checkpoint *c = &v->cp[v->ncp++];
    c->seq = seq;
    snprintf(c->hash, sizeof(c->hash), "%s", *end ? end + 1 : "");
    return 0;
}

/* Checkpoints and --sealed, once every file is walked. Returns 0 intact, 1 broken. */
static int
verify_end(const struct verifier *v, bool sealed)
{
    for (size_t i = 0; i < v->ncp; i++)
        if (!v->cp[i].seen) {
            if (v->have)
                printf("checkpoint %" PRIu64 ": not in the files given (they hold seq %" PRIu64
                       "..%" PRIu64 "): records are missing\n",
                       v->cp[i].seq, v->first, v->last.seq);
            else
                printf("checkpoint %" PRIu64 ": the files given hold no records\n", v->cp[i].seq);
            return 1;
        }
    bool closed =
        v->have && (strcmp(v->last.event, "stop") == 0 || strcmp(v->last.event, "rotate") == 0);
    if (sealed && v->have && !closed) {
        printf("%s:%zu: the log ends at seq %" PRIu64 " without a stop or rotate record: its "
               "tail was truncated or its writer stopped uncleanly\n",
               v->last_file, v->last_line, v->last.seq);
        return 1;
    }
    if (!v->have) {
        printf("chain OK: no records\n");
        return 0;
    }
    printf("chain OK: seq %" PRIu64 "..%" PRIu64 ", last hash %s\n", v->first, v->last.seq,
           v->last.hash);
    if (v->first != 1)
        printf("note: the chain starts at seq %" PRIu64 "; earlier records are in files not "
               "given (or rotated away)\n",
               v->first);
    if (strcmp(v->last.event, "rotate") == 0)
        printf("note: the chain continues in a newer file not given\n");
    else if (!closed)
        printf("note: the last record is not a stop record: the log is live or its writer "
               "stopped uncleanly; only a checkpoint (--checkpoint) detects a cut tail\n");
    return 0;
}

int
audit_verify_main(int argc, char **argv)
{
    struct verifier v;
    memset(&v, 0, sizeof(v));
    bool sealed = false, options = true;
    int rc = 2;
    size_t nfiles = 0, last_nonempty = 0;
    struct vfile *files = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*files));
    if (!files)
        return 2;
    /* Options may come before or after the files; "--" ends them. */
    for (int i = 1; i < argc; i++) {
        char err[256];
        if (!options || argv[i][0] != '-' || !argv[i][1]) {
            files[nfiles] = (struct vfile){.name = argv[i], .order = nfiles};
            nfiles++;
        } else if (strcmp(argv[i], "--") == 0) {
            options = false;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            verify_usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(argv[i], "--sealed") == 0) {
            sealed = true;
        } else if (strcmp(argv[i], "--hmac-key") == 0 && i + 1 < argc && !v.chain.mac) {
            if (chain_load_key(&v.chain, argv[++i], err, sizeof(err)) < 0) {
                fprintf(stderr, "tableguard audit verify: %s\n", err);
                goto out;
            }
        } else if (strcmp(argv[i], "--checkpoint") == 0 && i + 1 < argc) {
            if (parse_checkpoint(&v, argv[++i]) < 0) {
                fprintf(stderr, "tableguard audit verify: --checkpoint wants SEQ or SEQ:HASH "
                                "(64 lowercase hex digits)\n");
                goto out;
            }
        } else {
            verify_usage(stderr);
            goto out;
        }
    }
    if (nfiles == 0) {
        verify_usage(stderr);
        goto out;
    }
    for (size_t k = 0; k < nfiles; k++)
        if (verify_first_seq(&files[k]) < 0)
            goto out;
    qsort(files, nfiles, sizeof(*files), vfile_cmp);
    for (size_t k = 0; k < nfiles; k++)
        if (files[k].first != UINT64_MAX)
            last_nonempty = k;
    rc = 0;
    for (size_t k = 0; k < nfiles && rc == 0; k++)
        rc = verify_file(&v, files[k].name, k < last_nonempty);
    if (rc == 0)
        rc = verify_end(&v, sealed);
out:
    free(files);
    chain_free(&v.chain);
    return rc;
}

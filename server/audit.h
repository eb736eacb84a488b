// SPDX-License-Identifier: Apache-2.0
// The audit log: one hash-chained JSON line per admission decision, durable and verifiable.
#ifndef TABLEGUARD_AUDIT_H
#define TABLEGUARD_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

// Every line of the log is a JSON object whose last member is "hash": the hex SHA-256 (or
// HMAC-SHA256 with a key) of the line's own bytes without that member, and whose "prev" member
// is the previous record's hash. docs/audit.md gives the exact format and an independent check.
//
// Besides decisions the log holds three kinds of marker records, told apart by "event":
// "start" (the log was opened), "stop" (closed cleanly) and "rotate" (the last record of a file
// that was rotated away). Decision records carry "event":"decision".
//
// The module never prints and never exits. server/verify.c checks a log (`tableguard audit
// verify`); server/chain.c holds the hashing and line format both share.

// How durable a record is when audit_append returns.
enum audit_sync {
    AUDIT_SYNC_NONE,   // write(2) only: survives a process crash, not a host crash
    AUDIT_SYNC_BATCH,  // a background thread fsyncs at most ~0.1 s after a write
    AUDIT_SYNC_ALWAYS, // fsync'd before audit_append returns; concurrent callers share one
};

struct audit_options {
    const char *path;          // the log file, or "-" for stdout
    const char *hmac_key_path; // NULL: plain SHA-256 chain; else HMAC-SHA256 with this key
    enum audit_sync sync;
    uint64_t max_size;   // rotate before a file would grow past this many bytes; 0: never
    unsigned max_files;  // rotated files kept (FILE.1 newest .. FILE.N oldest); >= 1 with max_size
    const char *replica; // written into every record, usually the hostname; NULL: ""
    bool copy_stdout;    // with a file: also write every line to stdout (the container log),
                         // best effort: a failed copy does not fail the append
};

struct audit;

// Parses "none", "batch" or "always". Returns 0, or -1 for anything else.
int audit_sync_parse(const char *s, enum audit_sync *out);

// Opens or creates the log. On an existing file the chain continues from its last record (seq
// and hash); an incomplete last line (a write cut by a crash) is truncated away and counted in
// the "start" record. When FILE is missing or empty but FILE.1 exists (a crash during rotation)
// the chain continues from FILE.1. A "start" record is written at once; if that write fails
// (disk full) the open still succeeds, the failure is counted and the record is retried by the
// next append. The caller owns the result and frees it with audit_close. Returns NULL and fills
// err when the file cannot be opened, the key cannot be read, or the last record is damaged.
struct audit *audit_open(const struct audit_options *o, char *err, size_t errlen);

// Where an appended record sits in the chain.
struct audit_written {
    uint64_t seq;
    char hash[65]; // 64 hex digits
};

// Appends one decision record. Thread-safe. Adds "time" (RFC 3339 UTC, milliseconds), "seq",
// "replica", "event" ("decision"), "prev" and "hash" to the line, in that order
// around the caller's members, replacing any member of the same name. Returns only once the
// record is as durable as the sync mode promises. On success fills *out (when not NULL) with the
// record's seq and hash, so the caller can quote them. The caller keeps ownership of record (its
// reserved members are removed from it). The server writes its records with audit_append_text.
// Returns -1 and fills err on any failure (ENOSPC, EIO, fsync error); the chain is left intact
// (a partial line is cut off) and the next append may succeed.
int audit_append(struct audit *a, cJSON *record, struct audit_written *out, char *err,
                 size_t errlen);

// The same for a record already printed: record is one JSON object's text (len bytes, no
// newline), printed as cJSON prints (server/record.c, util/jsonw.h), whose members must not
// include the names the writer adds. Its members are written as they are, between "event" and
// "prev". The caller keeps ownership of record.
int audit_append_text(struct audit *a, const char *record, size_t len, struct audit_written *out,
                      char *err, size_t errlen);

// A decision record handed to the writer's thread (audit_submit), which writes the records
// handed over meanwhile together: their lines in one write(2) (and, with "always", one
// fdatasync), each record still checked and chained in order as audit_append_text does. The
// caller fills the first members and keeps the struct and the record's text until done runs.
struct audit_pending {
    const char *record; // as for audit_append_text
    size_t len;
    // Called once, from the writer's thread, when the record is written (rc 0, out filled) or
    // not (rc -1, err says why; the chain left as it was for it). The writer touches the struct
    // no more once it calls done.
    void (*done)(struct audit_pending *p);
    int rc;
    struct audit_written out;
    char err[256];
    // The writer's.
    struct audit_pending *next;
    bool buffered;
    uint64_t gen;
};

// Queues a record for the writer's thread (started at the first call) and returns at once; the
// record is as durable as the sync mode promises when p->done is called with rc 0. Thread-safe.
void audit_submit(struct audit *a, struct audit_pending *p);

// Whether a server should submit its records (audit_submit) and hold each answer until its
// record is written, rather than write each with audit_append_text: true with "always", where
// the records submitted meanwhile then share one fdatasync. With "batch" and "none" one
// write(2) per record costs less than holding the answer (suspending and resuming its
// connection). audit_groups(NULL) is false.
bool audit_groups(const struct audit *a);

// Counters since audit_open: records appended, failed appends. Either pointer may be NULL.
void audit_stats(const struct audit *a, uint64_t *records, uint64_t *write_errors);

// Makes the next append open the path again (SIGHUP: log-rotation tools rename the file and
// expect a reopen). The writer also notices by itself, before every record, when the path no
// longer names its file (deleted, renamed, replaced): inotify on the file and its directory says
// when to stat the path again (without inotify, every record stats it). Either way the new file
// starts with a "start" record whose "after" is "reopen". Thread-safe; audit_reopen(NULL) is a
// no-op.
void audit_reopen(struct audit *a);

// 0 while records can be written. After a failed append, tries again (writing a "start" record
// with "after":"write-failure", which marks the gap) and returns -1 with the reason in why
// while that fails too. Thread-safe.
int audit_writable(struct audit *a, char *why, size_t whylen);

// Writes the records submitted and not yet written, then a "stop" record, fsyncs and frees.
// audit_close(NULL) is a no-op.
void audit_close(struct audit *a);

#endif

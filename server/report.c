// SPDX-License-Identifier: Apache-2.0
// `tableguard audit report`: filters the decisions of audit log files, verifying the chain as it
// reads. One line in memory at a time, so a log of any size reports in constant memory.
#include "server/report.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include "policy/policy.h"
#include "server/chain.h"
#include "server/recview.h"
#include "util/xalloc.h"

struct rfile {
    const char *name;
    uint64_t first; // seq of its first record; UINT64_MAX: empty or unreadable first line
    size_t order;
    struct chain_head head; // its first record
};

struct reader {
    const struct report_options *o;
    struct chain chain;
    FILE *out, *diag;
    bool have; // a record was read
    uint64_t first;
    struct chain_record last;
    char last_replica[128];
    const char *last_file;
    size_t last_line;
    uint64_t records, decisions, matched;
    struct recview *view;
    char *buf; // lines read ahead: buf[start, end) not yet used
    size_t cap, start, end;
    bool eof;
};

// Lines are read in chunks this large; the buffer grows for a longer line.
#define READ_CHUNK (1u << 20)

static void
reader_free(struct reader *r)
{
    recview_free(r->view);
    free(r->buf);
    chain_free(&r->chain);
}

// ---- time ----------------------------------------------------------------------------------

static int
digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

// RFC 3339 (or a bare date) to Unix milliseconds.
static int
parse_rfc3339(const char *s, long long *out)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    const char *p = s;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
            digits(&p, 2, &sec))
            return -1;
        if (*p == '.') {
            p++;
            int scale = 100;
            if (*p < '0' || *p > '9')
                return -1;
            for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
                ms += (*p - '0') * scale;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
                return -1;
            off = sign * (oh * 60 + om) * 60;
        } else {
            return -1;
        }
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *out = ((long long)t - off) * 1000 + ms;
    return 0;
}

int
report_parse_time(const char *s, long long now_ms, long long *out)
{
    static const struct {
        char unit;
        long long ms;
    } units[] = {{'w', 604800000LL}, {'d', 86400000LL}, {'h', 3600000LL}, {'m', 60000LL}};
    char *end;
    if (s[0] >= '0' && s[0] <= '9') {
        errno = 0;
        unsigned long long n = strtoull(s, &end, 10);
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (end[0] == units[i].unit && end[1] == '\0' && errno == 0 && end - s <= 6) {
                *out = now_ms - (long long)n * units[i].ms;
                return 0;
            }
    }
    return parse_rfc3339(s, out);
}

// ---- reading a record ----------------------------------------------------------------------

static bool
glob(const char *pattern, const char *s, int flags)
{
    return pattern == NULL || (s != NULL && fnmatch(pattern, s, flags) == 0);
}

static bool
same_value(const struct recview_value *a, const struct recview_value *b)
{
    if (a->kind != b->kind)
        return false;
    return a->kind == RECVIEW_STRING ? strcmp(a->s, b->s) == 0 : a->kind != RECVIEW_OTHER;
}

static bool
same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

// A table row changed protection or the table set: a setting differs between before and after,
// the table appeared, went or was renamed, or a transition was judged.
static bool
row_changed(const struct recview_row *row)
{
    if (row->transition != NULL)
        return true;
    if (!same_str(row->table, row->old_table))
        return true;
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        if (!same_value(&row->before[i], &row->after[i]))
            return true;
    return false;
}

static bool
row_selected(const struct report_options *o, const struct recview_row *row)
{
    if (o->table != NULL && !glob(o->table, row->table, FNM_CASEFOLD) &&
        !glob(o->table, row->old_table, FNM_CASEFOLD))
        return false;
    return !o->changed || row_changed(row);
}

// A version 1 record has no tables: its rules (and an exclusion's) name the tables they hit.
static bool
rules_name_table(const char *pattern, const struct recview_record *rec)
{
    for (size_t i = 0; i < rec->nhits; i++)
        if (glob(pattern, rec->hits[i].table, FNM_CASEFOLD))
            return true;
    for (size_t i = 0; i < rec->nexcluded; i++)
        if (glob(pattern, rec->excluded[i].table, FNM_CASEFOLD))
            return true;
    return false;
}

static unsigned
decision_bit(const char *d)
{
    return d == NULL                 ? 0
           : strcmp(d, "allow") == 0 ? 1
           : strcmp(d, "patch") == 0 ? 2
           : strcmp(d, "deny") == 0  ? 4
                                     : 0;
}

static bool
record_selected(const struct report_options *o, const struct recview_record *rec)
{
    long long t;
    if ((o->has_since || o->has_until) &&
        (rec->time == NULL || parse_rfc3339(rec->time, &t) < 0 ||
         (o->has_since && t < o->since_ms) || (o->has_until && t > o->until_ms)))
        return false;
    if (!glob(o->namespace, rec->namespace, 0) || !glob(o->user, rec->username, 0))
        return false;
    if (o->decisions != 0 && (decision_bit(rec->decision) & o->decisions) == 0)
        return false;
    if (o->changed) {
        // What was persisted: the validating webhook sees the object as it will be stored (after
        // every mutation); a denial or a dry run changed nothing.
        if (!same_str(rec->webhook, "validate") || decision_bit(rec->decision) == 4 ||
            rec->dry_run != RECVIEW_FALSE)
            return false;
    }
    if (o->table == NULL && !o->changed)
        return true;
    for (size_t i = 0; i < rec->nrows; i++)
        if (row_selected(o, &rec->rows[i]))
            return true;
    return !o->changed && !rec->tables_array && rules_name_table(o->table, rec);
}

// ---- output --------------------------------------------------------------------------------

static void
csv_field(FILE *out, const char *s, bool last)
{
    if (s != NULL && strpbrk(s, ",\"\r\n") != NULL) {
        fputc('"', out);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', out);
            fputc(*s, out);
        }
        fputc('"', out);
    } else if (s != NULL) {
        fputs(s, out);
    }
    fputc(last ? '\n' : ',', out);
}

static const char *
setting_text(const struct recview_value *v)
{
    return v->kind == RECVIEW_TRUE     ? "true"
           : v->kind == RECVIEW_FALSE  ? "false"
           : v->kind == RECVIEW_STRING ? v->s
                                       : "";
}

// The rule names of a row, or of a record without rows (row NULL), joined by sep, into buf.
static const char *
join_rules(const struct recview_record *rec, const struct recview_row *row, char *buf, size_t len,
           const char *sep)
{
    size_t n = 0, count = row != NULL ? row->nrules : rec->nhits;
    buf[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const char *s = row != NULL ? row->rules[i] : rec->hits[i].name;
        if (s == NULL || n >= len)
            continue;
        int k = snprintf(buf + n, len - n, "%s%s", n ? sep : "", s);
        n += k > 0 ? (size_t)k : 0;
    }
    return buf;
}

// The CSV header; the settings' columns follow POLICY_SETTING_NAMES, as write_csv does.
static void
write_csv_header(FILE *out)
{
    fputs("time,seq,replica,uid,webhook,operation,dryRun,user,namespace,name,decision,code,"
          "skipped,component,table,oldTable,profile",
          out);
    const char *sides[] = {"before", "after"};
    for (size_t s = 0; s < 2; s++)
        for (int i = 0; i < POLICY_SETTING_COUNT; i++)
            fprintf(out, ",%s.%s", sides[s], POLICY_SETTING_NAMES[i]);
    fputs(",transition,exception,rules\n", out);
}

static void
write_csv(FILE *out, const struct recview_record *rec, uint64_t seq, const struct recview_row *row)
{
    static const struct recview_row none;
    char num[32], rules[1024];
    const struct recview_row *r = row != NULL ? row : &none;
    csv_field(out, rec->time, false);
    snprintf(num, sizeof num, "%" PRIu64, seq);
    csv_field(out, num, false);
    csv_field(out, rec->replica, false);
    csv_field(out, rec->uid, false);
    csv_field(out, rec->webhook, false);
    csv_field(out, rec->operation, false);
    csv_field(out, rec->dry_run == RECVIEW_TRUE ? "true" : "false", false);
    csv_field(out, rec->username, false);
    csv_field(out, rec->namespace, false);
    csv_field(out, rec->name, false);
    csv_field(out, rec->decision, false);
    snprintf(num, sizeof num, "%.0f", rec->has_code ? rec->code : 0);
    csv_field(out, num, false);
    csv_field(out, rec->skipped, false);
    csv_field(out, r->component, false);
    csv_field(out, r->table, false);
    csv_field(out, r->old_table, false);
    csv_field(out, r->profile, false);
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        csv_field(out, setting_text(&r->before[i]), false);
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        csv_field(out, setting_text(&r->after[i]), false);
    csv_field(out, r->transition, false);
    csv_field(out, r->exception, false);
    csv_field(out, join_rules(rec, row, rules, sizeof rules, ";"), true);
}

// "deletionProtection true->false, rename orders->orders-v2", or "" when nothing changed.
static const char *
change_text(const struct recview_row *row, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < POLICY_SETTING_COUNT && n < len; i++) {
        if (same_value(&row->after[i], &row->before[i]))
            continue;
        const char *bs = setting_text(&row->before[i]), *as = setting_text(&row->after[i]);
        int k = snprintf(buf + n, len - n, "%s%s %s->%s", n ? ", " : "", POLICY_SETTING_NAMES[i],
                         *bs ? bs : "none", *as ? as : "none");
        n += k > 0 ? (size_t)k : 0;
    }
    const char *tr = row->transition;
    if (tr != NULL && n < len) {
        int k = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", tr);
        n += k > 0 ? (size_t)k : 0;
    }
    const char *old = row->old_table, *table = row->table;
    if (old != NULL && table != NULL && strcmp(old, table) != 0 && n < len)
        snprintf(buf + n, len - n, "%stable %s->%s", n ? ", " : "", old, table);
    return buf;
}

static void
write_text(FILE *out, const struct recview_record *rec, uint64_t seq, const struct recview_row *row)
{
    char change[512], rules[1024];
    const char *table = row == NULL ? NULL : row->table ? row->table : row->old_table;
    join_rules(rec, row, rules, sizeof rules, ",");
    fprintf(out, "%-24s %8" PRIu64 "  %-24s %-7s %s/%s  %-5s%s  %-24s %-36s %s\n",
            rec->time ? rec->time : "-", seq, rec->username ? rec->username : "-",
            rec->operation ? rec->operation : "-", rec->namespace ? rec->namespace : "",
            rec->name ? rec->name : "", rec->decision ? rec->decision : "-",
            rec->dry_run == RECVIEW_TRUE ? " (dry run)" : "", table ? table : "-",
            row ? change_text(row, change, sizeof change) : "", *rules ? rules : "-");
}

// Writes a matching record: JSON lines get the line exactly as it is in the file (so it can be
// checked again); text and CSV a line per selected table (or one for a record without tables).
static void
write_record(struct reader *r, const struct recview_record *rec, uint64_t seq, const char *line,
             size_t len)
{
    if (r->o->output == REPORT_JSON) {
        fwrite(line, 1, len, r->out);
        return;
    }
    bool any = false;
    for (size_t i = 0; i < rec->nrows; i++) {
        const struct recview_row *row = &rec->rows[i];
        if (!row_selected(r->o, row) && (r->o->table != NULL || r->o->changed))
            continue;
        any = true;
        if (r->o->output == REPORT_CSV)
            write_csv(r->out, rec, seq, row);
        else
            write_text(r->out, rec, seq, row);
    }
    if (!any) {
        if (r->o->output == REPORT_CSV)
            write_csv(r->out, rec, seq, NULL);
        else
            write_text(r->out, rec, seq, NULL);
    }
}

// ---- the chain -----------------------------------------------------------------------------

static void
say(struct reader *r, const char *file, size_t line, const char *what, const char *detail)
{
    fprintf(r->diag, "%s:%zu: %s%s\n", file, line, what, detail);
}

// Checks that a parsed record continues the chain. Returns 0, or -1 with msg filled.
static int
follows(struct reader *r, const struct recview_record *rec, const struct chain_record *p,
        const char *body, size_t body_len, char *msg, size_t msglen)
{
    char digest[CHAIN_HASH_HEX + 1];
    if (chain_digest(&r->chain, body, body_len, digest) < 0) {
        snprintf(msg, msglen, "digest failed");
        return -1;
    }
    if (strcmp(digest, p->hash) != 0) {
        if (r->chain.key != NULL)
            snprintf(msg, msglen,
                     "hash mismatch: the record was modified, or the HMAC key is wrong");
        else if (same_str(rec->chain, "hmac-sha256"))
            snprintf(msg, msglen,
                     "the log is HMAC-chained (its start record says \"chain\":"
                     "\"hmac-sha256\"): pass its key with --hmac-key FILE");
        else
            snprintf(msg, msglen,
                     "hash mismatch: the record was modified, or the log is "
                     "HMAC-chained (pass --hmac-key FILE)");
        return -1;
    }
    const char *replica = rec->replica;
    if (r->have && (p->seq != r->last.seq + 1 || strcmp(p->prev, r->last.hash) != 0)) {
        if (replica != NULL && strcmp(replica, r->last_replica) != 0)
            snprintf(msg, msglen,
                     "seq %" PRIu64 " of replica %s does not continue seq %" PRIu64
                     " of replica %s (%s:%zu): a file from another log (each replica has its "
                     "own chain: report them apart)",
                     p->seq, replica, r->last.seq, r->last_replica, r->last_file, r->last_line);
        else if (p->seq != r->last.seq + 1)
            snprintf(msg, msglen,
                     "seq %" PRIu64 " where %" PRIu64 " was expected: records were deleted, "
                     "inserted or reordered, or a file is missing",
                     p->seq, r->last.seq + 1);
        else
            snprintf(msg, msglen,
                     "prev does not match the hash of seq %" PRIu64
                     " (%s:%zu): the chain is broken",
                     r->last.seq, r->last_file, r->last_line);
        return -1;
    }
    if (!r->have && p->seq == 1 && strcmp(p->prev, CHAIN_GENESIS) != 0) {
        snprintf(msg, msglen, "seq 1 must have the genesis prev (64 zeros)");
        return -1;
    }
    if (!r->have)
        r->first = p->seq;
    r->have = true;
    r->last = *p;
    snprintf(r->last_replica, sizeof r->last_replica, "%s", replica ? replica : "");
    return 0;
}

// The next line of in, with its newline (the last one may lack it), in r's buffer: the buffer
// holds many lines and grows only to hold the longest. Returns its length, 0 at the end, -1 on
// a read error.
static ssize_t
next_line(struct reader *r, FILE *in, char **line)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl != NULL || (r->eof && r->end > r->start)) {
            size_t n = nl != NULL ? (size_t)(nl + 1 - (r->buf + r->start)) : r->end - r->start;
            *line = r->buf + r->start;
            r->start += n;
            return (ssize_t)n;
        }
        if (r->eof)
            return 0;
        // Move the partial line to the front; grow when it fills the buffer.
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
        if (r->end == r->cap) {
            r->cap *= 2;
            r->buf = xrealloc(r->buf, r->cap);
        }
        size_t got = fread(r->buf + r->end, 1, r->cap - r->end, in);
        r->end += got;
        if (got == 0 && ferror(in))
            return -1;
        r->eof = got == 0;
    }
}

// Reads one file. Returns 0, 1 (chain broken, incomplete record), 2 (unreadable, not a log).
static int
read_stream(struct reader *r, FILE *in, const char *name)
{
    char *line, msg[512];
    size_t lineno = 0;
    ssize_t n;
    int rc = 0;
    if (r->buf == NULL) {
        r->cap = READ_CHUNK;
        r->buf = xmalloc(r->cap);
    }
    r->start = r->end = 0;
    r->eof = false;
    if (fileno(in) >= 0)
        (void)posix_fadvise(fileno(in), 0, 0, POSIX_FADV_SEQUENTIAL);
    while ((n = next_line(r, in, &line)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') {
            say(r, name, lineno, "",
                "incomplete last record without a newline (a write cut off by a crash, never "
                "acknowledged; the server cuts it off when it starts again): not reported");
            rc = 1;
            break;
        }
        struct chain_record p;
        size_t body_len;
        const struct recview_record *rec = recview_read(
            r->view, line, (size_t)n - 1, r->o->tree_only, &p, &body_len, msg, sizeof msg);
        if (rec == NULL) {
            if (lineno == 1) {
                say(r, name, lineno, "not an audit log: ", msg);
                rc = 2;
            } else {
                say(r, name, lineno, "chain broken: ", msg);
                rc = 1;
            }
            break;
        }
        if (follows(r, rec, &p, line, body_len, msg, sizeof msg) < 0) {
            say(r, name, lineno, "chain broken: ", msg);
            rc = 1;
            break;
        }
        line[body_len - 1] = ','; // the line as it is in the file again
        r->last_file = name;
        r->last_line = lineno;
        r->records++;
        if (same_str(p.event, "decision")) {
            r->decisions++;
            if (record_selected(r->o, rec)) {
                r->matched++;
                write_record(r, rec, p.seq, line, (size_t)n);
            }
        }
    }
    if (rc == 0 && n < 0) {
        fprintf(r->diag, "%s: read error\n", name);
        rc = 2;
    }
    return rc;
}

static int
read_file(struct reader *r, const char *name)
{
    FILE *in = fopen(name, "rb");
    if (in == NULL) {
        fprintf(r->diag, "%s: cannot open: %s\n", name, strerror(errno));
        return 2;
    }
    int rc = read_stream(r, in, name);
    fclose(in);
    return rc;
}

int
report_stream(const struct report_options *o, FILE *in, const char *name, FILE *out, FILE *diag)
{
    struct reader r = {.o = o, .out = out, .diag = diag, .view = recview_new()};
    int rc = read_stream(&r, in, name);
    reader_free(&r);
    return rc;
}

// Reads the seq of a file's first record, so files can be given in any order.
static void
first_seq(struct rfile *f)
{
    f->first = UINT64_MAX;
    FILE *in = fopen(f->name, "rb");
    if (in == NULL)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, in);
    if (n > 1 && line[n - 1] == '\n') {
        chain_read_head(line, (size_t)n - 1, &f->head);
        if (f->head.found)
            f->first = f->head.rec.seq;
    }
    free(line);
    fclose(in);
}

static int
rfile_cmp(const void *x, const void *y)
{
    const struct rfile *a = x, *b = y;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

int
report_run(const struct report_options *o, char **files, size_t nfiles, FILE *out, FILE *diag)
{
    struct reader r = {.o = o, .out = out, .diag = diag, .view = recview_new()};
    char err[256];
    if (o->hmac_key_path != NULL &&
        chain_load_key(&r.chain, o->hmac_key_path, err, sizeof err) < 0) {
        fprintf(diag, "tableguard audit report: %s\n", err);
        reader_free(&r);
        return 2;
    }
    struct rfile *fs = calloc(nfiles ? nfiles : 1, sizeof *fs);
    if (fs == NULL) {
        reader_free(&r);
        return 2;
    }
    for (size_t i = 0; i < nfiles; i++) {
        fs[i] = (struct rfile){.name = files[i], .order = i};
        first_seq(&fs[i]);
    }
    qsort(fs, nfiles, sizeof *fs, rfile_cmp);
    if (o->output == REPORT_CSV)
        write_csv_header(out);
    int rc = 0;
    for (size_t i = 0; i < nfiles && rc == 0; i++) {
        rc = read_file(&r, fs[i].name);
        // A file that another follows ends with its rotate record or continues in a reopened
        // file, as `audit verify` checks. A next file that does not link at all and is no
        // reopen is reported by the walk, which says more (another replica, a missing file).
        const struct chain_head *h = i + 1 < nfiles ? &fs[i + 1].head : NULL;
        char msg[1024];
        if (rc == 0 && h != NULL && h->found && r.last_file == fs[i].name &&
            ((h->rec.seq == r.last.seq + 1 && strcmp(h->rec.prev, r.last.hash) == 0) ||
             chain_head_reopen(h)) &&
            chain_file_end(&r.last, fs[i].name, h, fs[i + 1].name, msg, sizeof msg) < 0) {
            say(&r, fs[i].name, r.last_line, "chain broken: ", msg);
            rc = 1;
        }
    }
    fflush(out);
    if (rc != 0 && !r.have)
        fprintf(diag, "report: no record verified; nothing is reported\n");
    else if (rc != 0)
        fprintf(diag,
                "report: %" PRIu64 " of %" PRIu64 " decisions matched before the chain "
                "broke (seq %" PRIu64 "..%" PRIu64 " verified); nothing after the break "
                "is reported\n",
                r.matched, r.decisions, r.first, r.have ? r.last.seq : 0);
    else if (rc == 0 && r.have)
        fprintf(diag,
                "report: %" PRIu64 " of %" PRIu64 " decisions matched; chain OK: seq %" PRIu64
                "..%" PRIu64 ", last hash %s\n",
                r.matched, r.decisions, r.first, r.last.seq, r.last.hash);
    else if (rc == 0)
        fprintf(diag, "report: no records\n");
    free(fs);
    reader_free(&r);
    return rc;
}

// ---- the command line ----------------------------------------------------------------------

static void
usage(FILE *out)
{
    fputs("usage: tableguard audit report [--since T] [--until T] [--table GLOB] "
          "[--namespace GLOB] [--user GLOB]\n"
          "                               [--decision allow|patch|deny[,...]] [--changed] "
          "[--output text|csv|json]\n"
          "                               [--hmac-key FILE] FILE...\n"
          "T is RFC 3339 (2025-06-01T00:00:00Z), a date (2025-06-01) or an age (90d, 12h, 30m, "
          "2w).\n"
          "--changed: only changes that were persisted (validating webhook, allowed, not a dry "
          "run)\n"
          "of a table's protection settings or of the table set (added, removed, renamed).\n",
          out);
}

static int
parse_decisions(const char *s, unsigned *out)
{
    char buf[64];
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf)
        return -1;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned bit = decision_bit(t);
        if (bit == 0)
            return -1;
        *out |= bit;
    }
    return *out ? 0 : -1;
}

static int
parse_output(const char *s, struct report_options *o)
{
    if (strcmp(s, "text") == 0)
        o->output = REPORT_TEXT;
    else if (strcmp(s, "csv") == 0)
        o->output = REPORT_CSV;
    else if (strcmp(s, "json") == 0)
        o->output = REPORT_JSON;
    else
        return -1;
    return 0;
}

int
report_main(int argc, char **argv)
{
    struct report_options o = {0};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    char **files = calloc((size_t)(argc > 0 ? argc : 1), sizeof *files);
    size_t nfiles = 0;
    bool options = true;
    int rc = 2;
    if (files == NULL)
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char *bad = NULL;
        if (!options || a[0] != '-' || a[1] == '\0') {
            files[nfiles++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options = false;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(a, "--changed") == 0) {
            o.changed = true;
        } else if (v == NULL) {
            bad = "needs a value";
        } else if (strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0) {
            bool since = a[2] == 's';
            if (report_parse_time(v, now, since ? &o.since_ms : &o.until_ms) < 0)
                bad = "wants RFC 3339 (2025-06-01T00:00:00Z), a date (2025-06-01) or an age "
                      "(90d, 12h, 30m, 2w)";
            *(since ? &o.has_since : &o.has_until) = true;
            i++;
        } else if (strcmp(a, "--table") == 0) {
            o.table = argv[++i];
        } else if (strcmp(a, "--namespace") == 0) {
            o.namespace = argv[++i];
        } else if (strcmp(a, "--user") == 0) {
            o.user = argv[++i];
        } else if (strcmp(a, "--decision") == 0) {
            if (parse_decisions(v, &o.decisions) < 0)
                bad = "wants allow, patch or deny (comma separated)";
            i++;
        } else if (strcmp(a, "--output") == 0 || strcmp(a, "-o") == 0) {
            if (parse_output(v, &o) < 0)
                bad = "wants text, csv or json";
            i++;
        } else if (strcmp(a, "--hmac-key") == 0) {
            o.hmac_key_path = argv[++i];
        } else {
            fprintf(stderr, "tableguard audit report: unknown option %s\n", a);
            usage(stderr);
            goto out;
        }
        if (bad != NULL) {
            fprintf(stderr, "tableguard audit report: %s %s%s%s\n", a, bad, v ? ": " : "",
                    v ? v : "");
            goto out;
        }
    }
    if (o.has_since && o.has_until && o.since_ms > o.until_ms) {
        fprintf(stderr, "tableguard audit report: --since is after --until\n");
        goto out;
    }
    if (nfiles == 0) {
        usage(stderr);
        goto out;
    }
    // Whole blocks to a file or a pipe: a JSON line per record is many small writes otherwise.
    // (glibc takes the size only with a buffer; stdout uses it until exit.)
    static char outbuf[READ_CHUNK];
    if (!isatty(STDOUT_FILENO))
        setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    rc = report_run(&o, files, nfiles, stdout, stderr);
out:
    free(files);
    return rc;
}

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

#include <cjson/cJSON.h>

#include "policy/policy.h"
#include "server/chain.h"

struct rfile {
    const char *name;
    uint64_t first; // seq of its first record; UINT64_MAX: empty or unreadable first line
    size_t order;
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
};

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

static const char *
str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *
str2(const cJSON *o, const char *k1, const char *k2)
{
    return str(cJSON_GetObjectItemCaseSensitive(o, k1), k2);
}

static bool
glob(const char *pattern, const char *s, int flags)
{
    return pattern == NULL || (s != NULL && fnmatch(pattern, s, flags) == 0);
}

static bool
same_value(const cJSON *a, const cJSON *b)
{
    bool na = a == NULL || cJSON_IsNull(a), nb = b == NULL || cJSON_IsNull(b);
    if (na || nb)
        return na && nb;
    if (cJSON_IsBool(a) || cJSON_IsBool(b))
        return cJSON_IsBool(a) && cJSON_IsBool(b) && cJSON_IsTrue(a) == cJSON_IsTrue(b);
    return cJSON_IsString(a) && cJSON_IsString(b) && strcmp(a->valuestring, b->valuestring) == 0;
}

static bool
same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

// A table row changed protection or the table set: a setting differs between before and after,
// the table appeared, went or was renamed, or a transition was judged.
static bool
row_changed(const cJSON *row)
{
    if (str(row, "transition") != NULL)
        return true;
    const char *table = str(row, "table"), *old = str(row, "oldTable");
    if (!same_str(table, old))
        return true;
    const cJSON *before = cJSON_GetObjectItemCaseSensitive(row, "before");
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(row, "after");
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        if (!same_value(cJSON_GetObjectItemCaseSensitive(before, POLICY_SETTING_NAMES[i]),
                        cJSON_GetObjectItemCaseSensitive(after, POLICY_SETTING_NAMES[i])))
            return true;
    return false;
}

static bool
row_selected(const struct report_options *o, const cJSON *row)
{
    if (o->table != NULL && !glob(o->table, str(row, "table"), FNM_CASEFOLD) &&
        !glob(o->table, str(row, "oldTable"), FNM_CASEFOLD))
        return false;
    return !o->changed || row_changed(row);
}

// A version 1 record has no tables: its rules (and an exclusion's) name the tables they hit.
static bool
rules_name_table(const char *pattern, const cJSON *rec)
{
    const cJSON *lists[] = {cJSON_GetObjectItemCaseSensitive(rec, "rules"),
                            cJSON_GetObjectItemCaseSensitive(
                                cJSON_GetObjectItemCaseSensitive(rec, "excluded"), "rules")};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *hit;
        cJSON_ArrayForEach(
            hit, lists[i]) if (glob(pattern, str(hit, "table"), FNM_CASEFOLD)) return true;
    }
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
record_selected(const struct report_options *o, const cJSON *rec)
{
    long long t;
    const char *time = str(rec, "time");
    if ((o->has_since || o->has_until) &&
        (time == NULL || parse_rfc3339(time, &t) < 0 || (o->has_since && t < o->since_ms) ||
         (o->has_until && t > o->until_ms)))
        return false;
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(rec, "resource");
    if (!glob(o->namespace, str(res, "namespace"), 0) ||
        !glob(o->user, str2(rec, "user", "username"), 0))
        return false;
    const char *decision = str(rec, "decision");
    if (o->decisions != 0 && (decision_bit(decision) & o->decisions) == 0)
        return false;
    if (o->changed) {
        // What was persisted: the validating webhook sees the object as it will be stored (after
        // every mutation); a denial or a dry run changed nothing.
        if (!same_str(str(rec, "webhook"), "validate") || decision_bit(decision) == 4 ||
            !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rec, "dryRun")))
            return false;
    }
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(rec, "tables"), *row;
    if (o->table == NULL && !o->changed)
        return true;
    cJSON_ArrayForEach(row, rows) if (row_selected(o, row)) return true;
    return !o->changed && !cJSON_IsArray(rows) && rules_name_table(o->table, rec);
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
setting_text(const cJSON *v)
{
    return cJSON_IsTrue(v)     ? "true"
           : cJSON_IsFalse(v)  ? "false"
           : cJSON_IsString(v) ? v->valuestring
                               : "";
}

// The rule names of a row (or of a version 1 record), joined by sep, into buf.
static const char *
join_rules(const cJSON *names, bool objects, char *buf, size_t len, const char *sep)
{
    size_t n = 0;
    const cJSON *x;
    buf[0] = '\0';
    cJSON_ArrayForEach(x, names)
    {
        const char *s = objects ? str(x, "name") : cJSON_IsString(x) ? x->valuestring : NULL;
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
write_csv(FILE *out, const cJSON *rec, const cJSON *row)
{
    char num[32], rules[1024];
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(rec, "resource");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(rec, "seq");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(rec, "code");
    csv_field(out, str(rec, "time"), false);
    snprintf(num, sizeof num, "%.0f", cJSON_IsNumber(seq) ? seq->valuedouble : 0);
    csv_field(out, num, false);
    csv_field(out, str(rec, "replica"), false);
    csv_field(out, str(rec, "uid"), false);
    csv_field(out, str(rec, "webhook"), false);
    csv_field(out, str(rec, "operation"), false);
    csv_field(out, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "dryRun")) ? "true" : "false",
              false);
    csv_field(out, str2(rec, "user", "username"), false);
    csv_field(out, str(res, "namespace"), false);
    csv_field(out, str(res, "name"), false);
    csv_field(out, str(rec, "decision"), false);
    snprintf(num, sizeof num, "%.0f", cJSON_IsNumber(code) ? code->valuedouble : 0);
    csv_field(out, num, false);
    csv_field(out, str(rec, "skipped"), false);
    csv_field(out, str(row, "component"), false);
    csv_field(out, str(row, "table"), false);
    csv_field(out, str(row, "oldTable"), false);
    csv_field(out, str(row, "profile"), false);
    const char *sides[] = {"before", "after"};
    for (size_t s = 0; s < 2; s++)
        for (int i = 0; i < POLICY_SETTING_COUNT; i++)
            csv_field(
                out,
                setting_text(cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(row, sides[s]), POLICY_SETTING_NAMES[i])),
                false);
    csv_field(out, str(row, "transition"), false);
    csv_field(out, str(row, "exception"), false);
    if (row != NULL)
        join_rules(cJSON_GetObjectItemCaseSensitive(row, "rules"), false, rules, sizeof rules, ";");
    else
        join_rules(cJSON_GetObjectItemCaseSensitive(rec, "rules"), true, rules, sizeof rules, ";");
    csv_field(out, rules, true);
}

// "deletionProtection true->false, rename orders->orders-v2", or "" when nothing changed.
static const char *
change_text(const cJSON *row, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    const cJSON *before = cJSON_GetObjectItemCaseSensitive(row, "before");
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(row, "after");
    for (int i = 0; i < POLICY_SETTING_COUNT && n < len; i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(before, POLICY_SETTING_NAMES[i]);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(after, POLICY_SETTING_NAMES[i]);
        if (same_value(a, b))
            continue;
        const char *bs = setting_text(b), *as = setting_text(a);
        int k = snprintf(buf + n, len - n, "%s%s %s->%s", n ? ", " : "", POLICY_SETTING_NAMES[i],
                         *bs ? bs : "none", *as ? as : "none");
        n += k > 0 ? (size_t)k : 0;
    }
    const char *tr = str(row, "transition");
    if (tr != NULL && n < len) {
        int k = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", tr);
        n += k > 0 ? (size_t)k : 0;
    }
    const char *old = str(row, "oldTable"), *table = str(row, "table");
    if (old != NULL && table != NULL && strcmp(old, table) != 0 && n < len)
        snprintf(buf + n, len - n, "%stable %s->%s", n ? ", " : "", old, table);
    return buf;
}

static void
write_text(FILE *out, const cJSON *rec, const cJSON *row)
{
    char change[512], rules[1024];
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(rec, "resource");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(rec, "seq");
    const char *table = str(row, "table") ? str(row, "table") : str(row, "oldTable");
    if (row != NULL)
        join_rules(cJSON_GetObjectItemCaseSensitive(row, "rules"), false, rules, sizeof rules, ",");
    else
        join_rules(cJSON_GetObjectItemCaseSensitive(rec, "rules"), true, rules, sizeof rules, ",");
    fprintf(out, "%-24s %8.0f  %-24s %-7s %s/%s  %-5s%s  %-24s %-36s %s\n",
            str(rec, "time") ? str(rec, "time") : "-", cJSON_IsNumber(seq) ? seq->valuedouble : 0,
            str2(rec, "user", "username") ? str2(rec, "user", "username") : "-",
            str(rec, "operation") ? str(rec, "operation") : "-",
            str(res, "namespace") ? str(res, "namespace") : "",
            str(res, "name") ? str(res, "name") : "",
            str(rec, "decision") ? str(rec, "decision") : "-",
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "dryRun")) ? " (dry run)" : "",
            table ? table : "-", row ? change_text(row, change, sizeof change) : "",
            *rules ? rules : "-");
}

// Writes a matching record: JSON lines get the line exactly as it is in the file (so it can be
// checked again); text and CSV a line per selected table (or one for a record without tables).
static void
write_record(struct reader *r, const cJSON *rec, const char *body, size_t body_len,
             const char *hash)
{
    if (r->o->output == REPORT_JSON) {
        fwrite(body, 1, body_len - 1, r->out);
        fprintf(r->out, ",\"hash\":\"%s\"}\n", hash);
        return;
    }
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(rec, "tables"), *row;
    bool any = false;
    cJSON_ArrayForEach(row, rows)
    {
        if (!row_selected(r->o, row) && (r->o->table != NULL || r->o->changed))
            continue;
        any = true;
        if (r->o->output == REPORT_CSV)
            write_csv(r->out, rec, row);
        else
            write_text(r->out, rec, row);
    }
    if (!any) {
        if (r->o->output == REPORT_CSV)
            write_csv(r->out, rec, NULL);
        else
            write_text(r->out, rec, NULL);
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
follows(struct reader *r, const cJSON *rec, const struct chain_record *p, const char *body,
        size_t body_len, char *msg, size_t msglen)
{
    char digest[CHAIN_HASH_HEX + 1];
    if (chain_digest(&r->chain, body, body_len, digest) < 0) {
        snprintf(msg, msglen, "digest failed");
        return -1;
    }
    if (strcmp(digest, p->hash) != 0) {
        if (r->chain.mac != NULL)
            snprintf(msg, msglen,
                     "hash mismatch: the record was modified, or the HMAC key is wrong");
        else if (same_str(str(rec, "chain"), "hmac-sha256"))
            snprintf(msg, msglen,
                     "the log is HMAC-chained (its start record says \"chain\":"
                     "\"hmac-sha256\"): pass its key with --hmac-key FILE");
        else
            snprintf(msg, msglen,
                     "hash mismatch: the record was modified, or the log is "
                     "HMAC-chained (pass --hmac-key FILE)");
        return -1;
    }
    const char *replica = str(rec, "replica");
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

// Reads one file. Returns 0, 1 (chain broken, incomplete record), 2 (unreadable, not a log).
static int
read_stream(struct reader *r, FILE *in, const char *name)
{
    char *line = NULL, msg[512];
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
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
        cJSON *rec = NULL;
        if (chain_parse_record(line, (size_t)n - 1, &p, &body_len, &rec, msg, sizeof msg) < 0) {
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
            cJSON_Delete(rec);
            rc = 1;
            break;
        }
        r->last_file = name;
        r->last_line = lineno;
        r->records++;
        if (same_str(p.event, "decision")) {
            r->decisions++;
            if (record_selected(r->o, rec)) {
                r->matched++;
                write_record(r, rec, line, body_len, p.hash);
            }
        }
        cJSON_Delete(rec);
    }
    if (rc == 0 && ferror(in)) {
        fprintf(r->diag, "%s: read error\n", name);
        rc = 2;
    }
    free(line);
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
    struct reader r = {.o = o, .out = out, .diag = diag};
    int rc = read_stream(&r, in, name);
    chain_free(&r.chain);
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
    size_t cap = 0, body;
    ssize_t n = getline(&line, &cap, in);
    struct chain_record p;
    if (n > 1 && line[n - 1] == '\n' &&
        chain_parse_record(line, (size_t)n - 1, &p, &body, NULL, NULL, 0) == 0)
        f->first = p.seq;
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
    struct reader r = {.o = o, .out = out, .diag = diag};
    char err[256];
    if (o->hmac_key_path != NULL &&
        chain_load_key(&r.chain, o->hmac_key_path, err, sizeof err) < 0) {
        fprintf(diag, "tableguard audit report: %s\n", err);
        return 2;
    }
    struct rfile *fs = calloc(nfiles ? nfiles : 1, sizeof *fs);
    if (fs == NULL) {
        chain_free(&r.chain);
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
    for (size_t i = 0; i < nfiles && rc == 0; i++)
        rc = read_file(&r, fs[i].name);
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
    chain_free(&r.chain);
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
    rc = report_run(&o, files, nfiles, stdout, stderr);
out:
    free(files);
    return rc;
}

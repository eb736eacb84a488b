// SPDX-License-Identifier: Apache-2.0
// An audit log line's members for the report: a scanner for plain JSON in the writer's shape,
// and cJSON for every other line.
//
// The scanner validates the whole body, not only the members it keeps: a line cJSON would refuse
// must be refused (by cJSON) too. So it gives up, and the line goes to cJSON, on anything whose
// reading by cJSON takes more than the JSON grammar to predict: a key with an escape (cJSON
// compares keys as C strings, so "\u0000" would cut one short), a \u escape of NUL or of a
// surrogate, a control byte in a string, whitespace (cJSON skips every byte up to 32), a number
// outside the strict grammar or longer than 32 bytes (cJSON reads at most 63), a member read as a
// number that is not a plain integer, deep nesting, an object where a list is expected (cJSON's
// ArrayForEach walks an object's members), or text after the closing brace (cJSON ignores it).
// What the scanner keeps is what cJSON_GetObjectItemCaseSensitive would return: the first
// occurrence of a key, NULL for a member of another type.
#include "server/recview.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util/xalloc.h"

#define DEPTH_MAX 64
#define NUMBER_MAX 32
#define INT_DIGITS_MAX 15

struct recview {
    struct recview_record rec;
    struct recview_row *rows;
    size_t rows_cap;
    struct recview_hit *hits[2]; // the record's "rules", "excluded"."rules"
    size_t nhits[2], hits_cap[2];
    const char **names; // the rows' rule names, row after row
    size_t nnames, names_cap;
    char *arena; // the scanner's decoded strings; as large as the line
    size_t arena_len, arena_cap;
    cJSON *tree; // the last line cJSON read
};

struct recview *
recview_new(void)
{
    return xcalloc(1, sizeof(struct recview));
}

void
recview_free(struct recview *v)
{
    if (v == NULL)
        return;
    cJSON_Delete(v->tree);
    free(v->rows);
    free(v->hits[0]);
    free(v->hits[1]);
    free(v->names);
    free(v->arena);
    free(v);
}

// ---- the flat arrays -----------------------------------------------------------------------

// Room for one more element in an array that only grows (kept from line to line).
static void *
room(void *p, size_t count, size_t *cap, size_t size)
{
    if (count < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 16;
    return xrealloc(p, *cap * size);
}

static struct recview_row *
push_row(struct recview *v)
{
    v->rows = room(v->rows, v->rec.nrows, &v->rows_cap, sizeof(*v->rows));
    struct recview_row *row = &v->rows[v->rec.nrows++];
    memset(row, 0, sizeof(*row));
    return row;
}

// A hit that names nothing is left out: the report reads only the names.
static void
push_hit(struct recview *v, int list, const char *name, const char *table)
{
    if (name == NULL && table == NULL)
        return;
    v->hits[list] = room(v->hits[list], v->nhits[list], &v->hits_cap[list], sizeof(**v->hits));
    v->hits[list][v->nhits[list]++] = (struct recview_hit){name, table};
}

static void
push_name(struct recview *v, const char *name)
{
    v->names = room(v->names, v->nnames, &v->names_cap, sizeof(*v->names));
    v->names[v->nnames++] = name;
}

static void
reset(struct recview *v)
{
    cJSON_Delete(v->tree);
    v->tree = NULL;
    memset(&v->rec, 0, sizeof(v->rec));
    v->nhits[0] = v->nhits[1] = v->nnames = v->arena_len = 0;
}

// The pointers into the arrays, once they no longer move. Until then a row holds the index of
// its first name in rules.
static void
finish(struct recview *v)
{
    v->rec.rows = v->rows;
    v->rec.hits = v->hits[0];
    v->rec.nhits = v->nhits[0];
    v->rec.excluded = v->hits[1];
    v->rec.nexcluded = v->nhits[1];
    for (size_t i = 0; i < v->rec.nrows; i++)
        v->rows[i].rules = v->rows[i].nrules ? v->names + (uintptr_t)v->rows[i].rules : NULL;
}

// ---- the tree ------------------------------------------------------------------------------

static const cJSON *
member(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static const char *
str(const cJSON *o, const char *key)
{
    const cJSON *m = member(o, key);
    return cJSON_IsString(m) ? m->valuestring : NULL;
}

static enum recview_kind
kind(const cJSON *m)
{
    return m == NULL || cJSON_IsNull(m) ? RECVIEW_NONE
           : cJSON_IsTrue(m)            ? RECVIEW_TRUE
           : cJSON_IsFalse(m)           ? RECVIEW_FALSE
           : cJSON_IsString(m)          ? RECVIEW_STRING
                                        : RECVIEW_OTHER;
}

static void
tree_settings(const cJSON *side, struct recview_value *out)
{
    for (int i = 0; i < POLICY_SETTING_COUNT; i++) {
        const cJSON *m = member(side, POLICY_SETTING_NAMES[i]);
        out[i].kind = kind(m);
        out[i].s = out[i].kind == RECVIEW_STRING ? m->valuestring : NULL;
    }
}

// The lists are walked with cJSON_ArrayForEach, as the report always did: an object's members
// count as elements too.
static void
tree_record(struct recview *v, const cJSON *j)
{
    struct recview_record *r = &v->rec;
    r->time = str(j, "time");
    r->replica = str(j, "replica");
    r->chain = str(j, "chain");
    r->uid = str(j, "uid");
    r->webhook = str(j, "webhook");
    r->operation = str(j, "operation");
    r->decision = str(j, "decision");
    r->skipped = str(j, "skipped");
    r->username = str(member(j, "user"), "username");
    r->namespace = str(member(j, "resource"), "namespace");
    r->name = str(member(j, "resource"), "name");
    const cJSON *code = member(j, "code"), *x, *y;
    r->has_code = cJSON_IsNumber(code);
    r->code = r->has_code ? code->valuedouble : 0;
    r->dry_run = kind(member(j, "dryRun"));
    const cJSON *tables = member(j, "tables");
    r->tables_array = cJSON_IsArray(tables);
    cJSON_ArrayForEach(x, tables)
    {
        struct recview_row *row = push_row(v);
        row->component = str(x, "component");
        row->table = str(x, "table");
        row->old_table = str(x, "oldTable");
        row->profile = str(x, "profile");
        row->transition = str(x, "transition");
        row->exception = str(x, "exception");
        tree_settings(member(x, "before"), row->before);
        tree_settings(member(x, "after"), row->after);
        row->rules = (const char *const *)(uintptr_t)v->nnames;
        cJSON_ArrayForEach(y, member(x, "rules")) if (cJSON_IsString(y))
            push_name(v, y->valuestring);
        row->nrules = v->nnames - (uintptr_t)row->rules;
    }
    cJSON_ArrayForEach(x, member(j, "rules")) push_hit(v, 0, str(x, "name"), str(x, "table"));
    cJSON_ArrayForEach(x, member(member(j, "excluded"), "rules"))
        push_hit(v, 1, str(x, "name"), str(x, "table"));
    finish(v);
}

// ---- the scanner ---------------------------------------------------------------------------

struct scan {
    const unsigned char *p, *end;
    int depth;
    struct recview *v;
};

// Whether a byte stands for itself inside a string: not a quote, a backslash or a control byte.
static inline bool
plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

// The first byte from p on that is not plain, or end: eight bytes at a time while they are all
// plain (a borrow-free test for "some byte is below 0x20, a quote or a backslash").
static inline const unsigned char *
plain_run(const unsigned char *p, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    while (end - p >= 8) {
        uint64_t w, q, b;
        memcpy(&w, p, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        uint64_t m = (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high;
        if (m != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            // The lowest flag is exact (a false one only ever sits above a true one).
            return p + (__builtin_ctzll(m) >> 3);
#else
            break;
#endif
        }
        p += 8;
    }
    while (p < end && plain(*p))
        p++;
    return p;
}

static int
hex4(const unsigned char *p, unsigned *out)
{
    unsigned h = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d = c >= '0' && c <= '9'   ? c - '0'
                               : c >= 'a' && c <= 'f' ? c - 'a' + 10
                               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                      : 16;
        if (d == 16)
            return -1;
        h = h << 4 | d;
    }
    *out = h;
    return 0;
}

// An escape at p (the backslash), decoded to o when o is not NULL. Returns the bytes written, or
// -1 to give the line to cJSON. Moves p past the escape.
static int
escape(const unsigned char **pp, const unsigned char *end, char *o)
{
    const unsigned char *p = *pp;
    static const char from[] = "bfnrt\"\\/", to[] = "\b\f\n\r\t\"\\/";
    if (end - p < 2)
        return -1;
    const char *e = memchr(from, p[1], sizeof(from) - 1);
    if (e != NULL) {
        if (o != NULL)
            *o = to[e - from];
        *pp = p + 2;
        return 1;
    }
    unsigned c;
    // Past the 4 digits there is at least the closing quote.
    if (p[1] != 'u' || end - p < 7 || hex4(p + 2, &c) < 0 || c == 0 || (c >= 0xD800 && c <= 0xDFFF))
        return -1;
    *pp = p + 6;
    if (o == NULL)
        return 0;
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | c >> 6);
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    o[0] = (char)(0xE0 | c >> 12);
    o[1] = (char)(0x80 | (c >> 6 & 0x3F));
    o[2] = (char)(0x80 | (c & 0x3F));
    return 3;
}

// A string at s->p (its opening quote). With out, decodes it into the arena and points *out at
// it. Returns 0, or -1 to give the line to cJSON.
static int
scan_string(struct scan *s, const char **out)
{
    const unsigned char *p = s->p + 1, *end = s->end, *run = p;
    char *o = out != NULL ? s->v->arena + s->v->arena_len : NULL, *start = o;
    for (;;) {
        p = plain_run(p, end);
        if (p >= end)
            return -1;
        if (o != NULL) {
            memcpy(o, run, (size_t)(p - run));
            o += p - run;
        }
        if (*p == '"')
            break;
        if (*p != '\\')
            return -1; // a control byte
        int n = escape(&p, end, o);
        if (n < 0)
            return -1;
        if (o != NULL)
            o += n;
        run = p;
    }
    s->p = p + 1;
    if (out != NULL) {
        *o++ = '\0';
        *out = start;
        s->v->arena_len += (size_t)(o - start);
    }
    return 0;
}

static size_t
digits(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *q = p;
    while (q < end && *q >= '0' && *q <= '9')
        q++;
    return (size_t)(q - p);
}

// A number at s->p in the strict JSON grammar. With out, it must be a plain integer of at most 15
// digits (exact in a double), stored in *out. Returns 0, or -1 to give the line to cJSON.
static int
scan_number(struct scan *s, double *out)
{
    const unsigned char *p = s->p, *end = s->end, *start = p;
    bool minus = p < end && *p == '-';
    p += minus;
    size_t n = digits(p, end);
    if (n == 0 || (n > 1 && *p == '0'))
        return -1;
    if (out != NULL) {
        if (n > INT_DIGITS_MAX)
            return -1;
        double x = 0;
        for (size_t i = 0; i < n; i++)
            x = x * 10 + (p[i] - '0');
        *out = minus ? -x : x;
    }
    p += n;
    if (p < end && *p == '.') {
        if (out != NULL || (n = digits(p + 1, end)) == 0)
            return -1;
        p += 1 + n;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p += p + 1 < end && (p[1] == '+' || p[1] == '-') ? 2 : 1;
        if (out != NULL || (n = digits(p, end)) == 0)
            return -1;
        p += n;
    }
    if (p - start > NUMBER_MAX)
        return -1;
    s->p = p;
    return 0;
}

static int
literal(struct scan *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

// Steps to the next item of an array or object (close is its closing byte): call with *first
// true right after its opening byte. Returns 1 with s->p at the item, 0 past the closing byte,
// -1 to give the line to cJSON.
static int
next_item(struct scan *s, bool *first, unsigned char close)
{
    const unsigned char *p = s->p;
    if (p >= s->end)
        return -1;
    if (*p == close) {
        s->p = p + 1;
        return 0;
    }
    if (!*first && *p++ != ',')
        return -1;
    *first = false;
    s->p = p;
    return p < s->end ? 1 : -1;
}

// A key the scanner keeps, zero-padded so that it can be read 8 bytes at a time.
#define KEY_MAX 24
struct key {
    char s[KEY_MAX];
    size_t n; // at most KEY_MAX (a longer literal does not compile)
};

// memcmp(a, b, n) == 0 for a key: inline, since a call costs more than comparing a few bytes.
static inline bool
same_bytes(const unsigned char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != (unsigned char)b[i])
            return false;
    return true;
}

// Whether the KEY_MAX bytes at p start with k's n bytes, 8 at a time (a byte loop ends in a
// mispredicted branch for nearly every key).
static inline bool
same_key(const unsigned char *p, const struct key *k)
{
    // MASK + 8 - r: r bytes of ones, then zeros, in memory order whatever the byte order.
    static const unsigned char MASK[16] = {255, 255, 255, 255, 255, 255, 255, 255};
    uint64_t a, b, m;
    size_t i = 0;
    for (; i + 8 <= k->n; i += 8) {
        memcpy(&a, p + i, 8);
        memcpy(&b, k->s + i, 8);
        if (a != b)
            return false;
    }
    if (i == k->n)
        return true;
    memcpy(&a, p + i, 8);
    memcpy(&b, k->s + i, 8);
    memcpy(&m, MASK + 8 - (k->n - i), 8);
    return ((a ^ b) & m) == 0;
}
#define KEY(s)                                                                                     \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

// Reads a member's key and its colon at s->p (next_item's item). Returns the index of the key in
// keys, n for another key, -1 to give the line to cJSON (an escape in the key, say). The writer
// writes known keys in the order of keys: *hint, the index after the last one found, is tried
// first, by comparing the bytes at s->p to it.
static int
member_key(struct scan *s, const struct key *keys, int n, int *hint)
{
    const unsigned char *p = s->p + 1, *end = s->end, *key = p;
    if (s->p[0] != '"')
        return -1;
    if (*hint < n) {
        const struct key *k = &keys[*hint];
        bool same = end - p >= KEY_MAX ? same_key(p, k)
                                       : (size_t)(end - p) > k->n && same_bytes(p, k->s, k->n);
        if (same && (size_t)(end - p) > k->n + 2 && p[k->n] == '"' && p[k->n + 1] == ':') {
            s->p = p + k->n + 2;
            return (*hint)++;
        }
    }
    while (p < end && plain(*p)) // keys are short: no need for plain_run
        p++;
    if (end - p < 3 || p[0] != '"' || p[1] != ':')
        return -1;
    s->p = p + 2;
    size_t klen = (size_t)(p - key);
    for (int i = 0; i < n; i++)
        if (keys[i].n == klen && same_bytes(key, keys[i].s, klen)) {
            *hint = i + 1;
            return i;
        }
    return n;
}

static int skip_value(struct scan *s);

static int
enter(struct scan *s)
{
    s->p++;
    return ++s->depth > DEPTH_MAX ? -1 : 0;
}

static int
skip_container(struct scan *s)
{
    bool object = *s->p == '{', first = true;
    int rc, hint = 0;
    if (enter(s) < 0)
        return -1;
    while ((rc = next_item(s, &first, object ? '}' : ']')) == 1)
        if ((object && member_key(s, NULL, 0, &hint) < 0) || skip_value(s) < 0)
            return -1;
    s->depth--;
    return rc;
}

static int
skip_value(struct scan *s)
{
    switch (*s->p) {
    case '"':
        return scan_string(s, NULL);
    case '{':
    case '[':
        return skip_container(s);
    case 't':
        return literal(s, "true", 4);
    case 'f':
        return literal(s, "false", 5);
    case 'n':
        return literal(s, "null", 4);
    default:
        return scan_number(s, NULL);
    }
}

// A value read as cJSON_IsString would: a string into *out, anything else skipped and NULL.
static int
scan_str(struct scan *s, const char **out)
{
    *out = NULL;
    return *s->p == '"' ? scan_string(s, out) : skip_value(s);
}

static int
scan_kind(struct scan *s, struct recview_value *out)
{
    switch (*s->p) {
    case '"':
        out->kind = RECVIEW_STRING;
        return scan_string(s, &out->s);
    case 't':
        out->kind = RECVIEW_TRUE;
        break;
    case 'f':
        out->kind = RECVIEW_FALSE;
        break;
    case 'n':
        out->kind = RECVIEW_NONE;
        break;
    default:
        out->kind = RECVIEW_OTHER;
    }
    return skip_value(s);
}

// Walks the object at s->p: for each key of keys met for the first time, calls each(s, index,
// ctx) with s->p at its value (each must consume it); skips every other member. A value that is
// not an object is skipped whole. Returns 0, or -1 to give the line to cJSON.
static int
scan_object(struct scan *s, const struct key *keys, int nkeys,
            int (*each)(struct scan *, int, void *), void *ctx)
{
    if (*s->p != '{')
        return skip_value(s);
    bool first = true;
    unsigned seen = 0;
    int rc, hint = 0;
    if (enter(s) < 0)
        return -1;
    while ((rc = next_item(s, &first, '}')) == 1) {
        int i = member_key(s, keys, nkeys, &hint);
        if (i < 0)
            return -1;
        if (i == nkeys || (seen & 1u << i)) {
            rc = skip_value(s);
        } else {
            seen |= 1u << i;
            rc = each(s, i, ctx);
        }
        if (rc < 0)
            return -1;
    }
    s->depth--;
    return rc;
}

// Walks the list at s->p: calls each(s, ctx) for each element. Something that is neither an
// array nor an object is skipped (no elements); an object goes to cJSON.
static int
scan_list(struct scan *s, int (*each)(struct scan *, void *), void *ctx)
{
    if (*s->p == '{')
        return -1;
    if (*s->p != '[')
        return skip_value(s);
    bool first = true;
    int rc;
    if (enter(s) < 0)
        return -1;
    while ((rc = next_item(s, &first, ']')) == 1)
        if (each(s, ctx) < 0)
            return -1;
    s->depth--;
    return rc;
}

static const struct key SETTING_KEYS[POLICY_SETTING_COUNT] = {KEY("deletionProtection"),
                                                              KEY("pointInTimeRecovery")};

static int
each_setting(struct scan *s, int i, void *ctx)
{
    return scan_kind(s, (struct recview_value *)ctx + i);
}

static int
each_row_rule(struct scan *s, void *ctx)
{
    const char *name;
    (void)ctx;
    if (scan_str(s, &name) < 0)
        return -1;
    if (name != NULL)
        push_name(s->v, name);
    return 0;
}

// A row's members, in the order the writer writes them.
enum {
    ROW_COMPONENT,
    ROW_TABLE,
    ROW_OLD_TABLE,
    ROW_PROFILE,
    ROW_BEFORE,
    ROW_AFTER,
    ROW_TRANSITION,
    ROW_EXCEPTION,
    ROW_RULES,
    ROW_KEYS
};
static const struct key ROW_KEYS_[ROW_KEYS] = {KEY("component"),  KEY("table"),     KEY("oldTable"),
                                               KEY("profile"),    KEY("before"),    KEY("after"),
                                               KEY("transition"), KEY("exception"), KEY("rules")};

static int
each_row_member(struct scan *s, int i, void *ctx)
{
    struct recview_row *row = &s->v->rows[(uintptr_t)ctx];
    const char **strs[] = {[ROW_COMPONENT] = &row->component,   [ROW_TABLE] = &row->table,
                           [ROW_OLD_TABLE] = &row->old_table,   [ROW_PROFILE] = &row->profile,
                           [ROW_TRANSITION] = &row->transition, [ROW_EXCEPTION] = &row->exception};
    if (i == ROW_BEFORE || i == ROW_AFTER)
        return scan_object(s, SETTING_KEYS, POLICY_SETTING_COUNT, each_setting,
                           i == ROW_BEFORE ? row->before : row->after);
    if (i != ROW_RULES)
        return scan_str(s, strs[i]);
    size_t start = s->v->nnames;
    if (scan_list(s, each_row_rule, NULL) < 0)
        return -1;
    row = &s->v->rows[(uintptr_t)ctx]; // names grew, not rows: row is still valid
    row->rules = (const char *const *)(uintptr_t)start;
    row->nrules = s->v->nnames - start;
    return 0;
}

static int
each_row(struct scan *s, void *ctx)
{
    (void)ctx;
    struct recview_row *row = push_row(s->v);
    row->rules = (const char *const *)(uintptr_t)s->v->nnames;
    return scan_object(s, ROW_KEYS_, ROW_KEYS, each_row_member,
                       (void *)(uintptr_t)(size_t)(row - s->v->rows));
}

// Reads the string members keys[i] into ((const char **)ctx)[i].
static int
each_string(struct scan *s, int i, void *ctx)
{
    return scan_str(s, (const char **)ctx + i);
}

// An element of a "rules" list of objects; ctx is the list (0 or 1).
static int
each_hit(struct scan *s, void *ctx)
{
    static const struct key keys[] = {KEY("name"), KEY("table")};
    const char *h[2] = {NULL, NULL};
    if (scan_object(s, keys, 2, each_string, h) < 0)
        return -1;
    push_hit(s->v, (int)(uintptr_t)ctx, h[0], h[1]);
    return 0;
}

static int
each_excluded(struct scan *s, int i, void *ctx)
{
    (void)i;
    (void)ctx;
    return scan_list(s, each_hit, (void *)1);
}

enum {
    K_TIME,
    K_SEQ,
    K_REPLICA,
    K_EVENT,
    K_CHAIN,
    K_UID,
    K_WEBHOOK,
    K_OPERATION,
    K_DRY_RUN,
    K_USER,
    K_RESOURCE,
    K_DECISION,
    K_CODE,
    K_SKIPPED,
    K_RULES,
    K_TABLES,
    K_EXCLUDED,
    K_PREV,
    K_KEYS
};
static const struct key KEYS[K_KEYS] = {
    KEY("time"),     KEY("seq"),      KEY("replica"),   KEY("event"),   KEY("chain"),
    KEY("uid"),      KEY("webhook"),  KEY("operation"), KEY("dryRun"),  KEY("user"),
    KEY("resource"), KEY("decision"), KEY("code"),      KEY("skipped"), KEY("rules"),
    KEY("tables"),   KEY("excluded"), KEY("prev")};

struct top {
    struct chain_record *p;
    bool seq, prev;
};

static int
each_top_string(struct scan *s, int i, struct recview_record *r)
{
    const char **strs[] = {
        [K_TIME] = &r->time,         [K_REPLICA] = &r->replica, [K_CHAIN] = &r->chain,
        [K_UID] = &r->uid,           [K_WEBHOOK] = &r->webhook, [K_OPERATION] = &r->operation,
        [K_DECISION] = &r->decision, [K_SKIPPED] = &r->skipped};
    return scan_str(s, strs[i]);
}

// The members of the record itself; seq and prev as chain_read_members checks them (anything
// else goes to cJSON, which says what is wrong).
static int
each_top(struct scan *s, int i, void *ctx)
{
    struct top *t = ctx;
    struct recview_record *r = &s->v->rec;
    const char *x, *two[2];
    struct recview_value dry;
    double seq;
    switch (i) {
    case K_SEQ:
        if (*s->p < '1' || *s->p > '9' || scan_number(s, &seq) < 0)
            return -1;
        t->p->seq = (uint64_t)seq;
        t->seq = true;
        return 0;
    case K_PREV:
        if (*s->p != '"' || scan_string(s, &x) < 0 || !chain_is_hex64(x, strlen(x)))
            return -1;
        memcpy(t->p->prev, x, CHAIN_HASH_HEX);
        t->prev = true;
        return 0;
    case K_EVENT:
        if (scan_str(s, &x) < 0)
            return -1;
        if (x != NULL) { // as chain_read_members: cut to fit
            size_t n = strnlen(x, sizeof(t->p->event) - 1);
            memcpy(t->p->event, x, n);
            t->p->event[n] = '\0';
        }
        return 0;
    case K_DRY_RUN:
        if (scan_kind(s, &dry) < 0)
            return -1;
        r->dry_run = dry.kind;
        return 0;
    case K_CODE:
        if (*s->p != '-' && (*s->p < '0' || *s->p > '9'))
            return skip_value(s);
        r->has_code = true;
        return scan_number(s, &r->code);
    case K_USER:
    case K_RESOURCE: {
        static const struct key user[] = {KEY("username")},
                                resource[] = {KEY("namespace"), KEY("name")};
        two[0] = two[1] = NULL;
        if (scan_object(s, i == K_USER ? user : resource, i == K_USER ? 1 : 2, each_string, two) <
            0)
            return -1;
        if (i == K_USER)
            r->username = two[0];
        else
            r->namespace = two[0], r->name = two[1];
        return 0;
    }
    case K_TABLES:
        r->tables_array = *s->p == '[';
        return scan_list(s, each_row, NULL);
    case K_RULES:
        return scan_list(s, each_hit, (void *)0);
    case K_EXCLUDED: {
        static const struct key keys[] = {KEY("rules")};
        return scan_object(s, keys, 1, each_excluded, NULL);
    }
    default:
        return each_top_string(s, i, r);
    }
}

// Scans a body in the writer's shape. Returns 0, or -1 to give the line to cJSON.
static int
scan_record(struct recview *v, const char *body, size_t len, struct chain_record *p)
{
    struct scan s = {(const unsigned char *)body, (const unsigned char *)body + len, 0, v};
    struct top t = {.p = p};
    if (len + 1 > v->arena_cap) {
        free(v->arena);
        v->arena_cap = len + 1 > 4096 ? len + 1 : 4096;
        v->arena = xmalloc(v->arena_cap);
    }
    if (scan_object(&s, KEYS, K_KEYS, each_top, &t) < 0 || s.p != s.end || !t.seq || !t.prev)
        return -1;
    finish(v);
    v->rec.scanned = true;
    return 0;
}

const struct recview_record *
recview_read(struct recview *v, char *line, size_t len, bool tree_only, struct chain_record *p,
             size_t *body_len, char *err, size_t errlen)
{
    reset(v);
    if (chain_split_line(line, len, p, body_len, err, errlen) < 0)
        return NULL;
    if (!tree_only && scan_record(v, line, *body_len, p) == 0)
        return &v->rec;
    reset(v);
    cJSON *j = cJSON_ParseWithLength(line, *body_len);
    if (chain_read_members(j, p, err, errlen) < 0) {
        cJSON_Delete(j);
        return NULL;
    }
    v->tree = j;
    tree_record(v, j);
    return &v->rec;
}

// ---- comparing -----------------------------------------------------------------------------

static bool
same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
same_values(const struct recview_value *a, const struct recview_value *b)
{
    for (int i = 0; i < POLICY_SETTING_COUNT; i++)
        if (a[i].kind != b[i].kind || !same(a[i].s, b[i].s))
            return false;
    return true;
}

static bool
same_row(const struct recview_row *a, const struct recview_row *b)
{
    if (!same(a->component, b->component) || !same(a->table, b->table) ||
        !same(a->old_table, b->old_table) || !same(a->profile, b->profile) ||
        !same(a->transition, b->transition) || !same(a->exception, b->exception) ||
        !same_values(a->before, b->before) || !same_values(a->after, b->after) ||
        a->nrules != b->nrules)
        return false;
    for (size_t i = 0; i < a->nrules; i++)
        if (!same(a->rules[i], b->rules[i]))
            return false;
    return true;
}

static bool
same_hits(const struct recview_hit *a, size_t na, const struct recview_hit *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!same(a[i].name, b[i].name) || !same(a[i].table, b[i].table))
            return false;
    return true;
}

bool
recview_equal(const struct recview_record *a, const struct recview_record *b)
{
    const char *const *sa[] = {&a->time,     &a->replica,   &a->chain,    &a->uid,
                               &a->webhook,  &a->operation, &a->decision, &a->skipped,
                               &a->username, &a->namespace, &a->name};
    const char *const *sb[] = {&b->time,     &b->replica,   &b->chain,    &b->uid,
                               &b->webhook,  &b->operation, &b->decision, &b->skipped,
                               &b->username, &b->namespace, &b->name};
    for (size_t i = 0; i < sizeof(sa) / sizeof(sa[0]); i++)
        if (!same(*sa[i], *sb[i]))
            return false;
    if (a->has_code != b->has_code ||
        (a->has_code && memcmp(&a->code, &b->code, sizeof(a->code))) || a->dry_run != b->dry_run ||
        a->tables_array != b->tables_array || a->nrows != b->nrows ||
        !same_hits(a->hits, a->nhits, b->hits, b->nhits) ||
        !same_hits(a->excluded, a->nexcluded, b->excluded, b->nexcluded))
        return false;
    for (size_t i = 0; i < a->nrows; i++)
        if (!same_row(&a->rows[i], &b->rows[i]))
            return false;
    return true;
}

// SPDX-License-Identifier: Apache-2.0
// The AdmissionReview v1 codec, following the API server's own rules for webhooks.
#include "server/review.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonr.h"
#include "util/jsonw.h"
#include "util/xalloc.h"

// ---- the request tree's arena ------------------------------------------------------------------
//
// A review of a 1000-component Application is a tree of about 100 000 cJSON nodes and strings.
// Allocating each with malloc and freeing each with cJSON_Delete was half the cost of a review,
// so review_decode parses into an arena: cJSON's allocation hooks bump a pointer in the chunks of
// the arena the calling thread is parsing into, and review_request_free drops the chunks whole.
// Outside a parse the hooks are plain malloc and free, so every other cJSON use is unchanged.
// Nothing may detach or delete an item of a decoded tree (it is const to its readers).
// Sanitizer builds keep one malloc per node so they still see every access, unless
// -DREVIEW_ARENA=1 asks for the arena: `make asan` runs the unit tests that decode reviews and
// the replay of the review and patch corpora once each way (the Makefile's review-arena).
#ifdef REVIEW_ARENA
#elif defined(__SANITIZE_ADDRESS__)
#define REVIEW_ARENA 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define REVIEW_ARENA 0
#endif
#endif
#ifndef REVIEW_ARENA
#define REVIEW_ARENA 1
#endif

struct review_chunk {
    struct review_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

// The arena the calling thread parses into, or NULL (set only inside review_decode).
static _Thread_local struct review_chunk **tl_arena;
// The free bytes of the arena's current chunk, [tl_next, tl_end); both NULL outside a parse.
static _Thread_local unsigned char *tl_next, *tl_end;
// The size of the first chunk of the arena being filled: about what the body's tree needs.
static _Thread_local size_t tl_first;

static struct review_chunk *
chunk_new(size_t size)
{
    struct review_chunk *c = xmalloc(sizeof *c + size);
    c->size = size;
    c->used = 0;
    return c;
}

// The calling thread's cJSON allocations go into *arena (NULL: to the heap) until arena_leave.
// A chunk's `used` is brought up to date when its thread leaves it.
static void
arena_enter(struct review_chunk **arena)
{
    tl_arena = arena;
    struct review_chunk *c = arena != NULL ? *arena : NULL;
    tl_next = c != NULL ? c->data + c->used : NULL;
    tl_end = c != NULL ? c->data + c->size : NULL;
}

static void
arena_leave(void)
{
    if (tl_arena != NULL && *tl_arena != NULL)
        (*tl_arena)->used = (size_t)(tl_next - (*tl_arena)->data);
    tl_arena = NULL;
    tl_next = tl_end = NULL;
}

// Outside a decode cJSON allocates from the heap, under xmalloc's out-of-memory policy. In a
// decode, a new chunk in front of the arena, with the first n bytes taken: each further chunk
// doubles the arena, so an underestimate costs a few chunks more.
__attribute__((noinline)) static void *
arena_slow(size_t n)
{
    if (tl_arena == NULL || n > SIZE_MAX - 15) // no size that large fits: xmalloc says so
        return xmalloc(n);
    n = n == 0 ? 16 : (n + 15) & ~(size_t)15;
    struct review_chunk *c = *tl_arena;
    if (c != NULL)
        c->used = (size_t)(tl_next - c->data);
    size_t want = c ? c->size * 2 : tl_first;
    struct review_chunk *fresh = chunk_new(want > n ? want : n);
    fresh->next = c;
    *tl_arena = fresh;
    tl_next = fresh->data + n;
    tl_end = fresh->data + fresh->size;
    return fresh->data;
}

// cJSON's allocator. The heap path and the arena's growth are out of line, so the common case,
// a bump in the current chunk, saves no registers: a review allocates once per JSON value and
// once per string. Outside a parse both bounds are NULL, so every size takes the slow path
// (a size of 0, or one that wraps when rounded up, does in any case).
static void *
arena_malloc(size_t n)
{
    size_t r = (n + 15) & ~(size_t)15;
    unsigned char *p = tl_next;
    if (r - 1 >= (uintptr_t)tl_end - (uintptr_t)p)
        return arena_slow(n);
    tl_next = p + r;
    return p;
}

static void
arena_free(void *p)
{
    if (tl_arena != NULL)
        for (const struct review_chunk *c = *tl_arena; c != NULL; c = c->next)
            if ((unsigned char *)p >= c->data && (unsigned char *)p < c->data + c->size)
                return; // released with the whole arena
    free(p);
}

static void
arena_release(struct review_chunk *c)
{
    while (c != NULL) {
        struct review_chunk *next = c->next;
        free(c);
        c = next;
    }
}

static const char *const OPERATIONS[REVIEW_OPERATION_COUNT] = {"CREATE", "UPDATE", "DELETE",
                                                               "CONNECT", "unknown"};

const char *
review_operation_name(enum review_operation op)
{
    return op < REVIEW_OPERATION_COUNT ? OPERATIONS[op] : OPERATIONS[REVIEW_UNKNOWN];
}

void
review_init(void)
{
    cJSON_Hooks hooks = {arena_malloc, arena_free};
    cJSON_InitHooks(&hooks);
}

// GCC and clang vector types: sixteen byte compares at once on any target (SSE2 on x86-64).
typedef unsigned char bytes16 __attribute__((vector_size(16)));

static bool
utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        // Runs of ASCII, the bulk of a review, sixty-four bytes at a time (four vectors or'ed,
        // one test of their high bits), then thirty-two, then eight.
        const uint64_t high = 0x8080808080808080u;
        uint64_t w[4];
        if (i + 64 <= n) {
            bytes16 v[4];
            memcpy(v, s + i, sizeof v);
            bytes16 any = v[0] | v[1] | v[2] | v[3];
            memcpy(w, &any, sizeof any);
            if (((w[0] | w[1]) & high) == 0) {
                i += 64;
                continue;
            }
        }
        if (i + 32 <= n && (memcpy(w, s + i, 32), ((w[0] | w[1] | w[2] | w[3]) & high) == 0)) {
            i += 32;
            continue;
        }
        if (i + 8 <= n && (memcpy(w, s + i, 8), (w[0] & high) == 0)) {
            i += 8;
            continue;
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + need >= n)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += need + 1;
    }
    return true;
}

bool
review_utf8_valid(const char *s, size_t n)
{
    return utf8_valid((const unsigned char *)s, n);
}

// The backslash at s[at] starts the escape \u0000: "u0000" follows it, and it ends an odd run of
// backslashes (in "\\u0000" the backslash is escaped itself).
static bool
escaped_nul_at(const char *s, size_t n, size_t at)
{
    if (s[at] != '\\' || at + 6 > n || memcmp(s + at + 1, "u0000", 5) != 0)
        return false;
    size_t run = 1;
    while (run <= at && s[at - run] == '\\')
        run++;
    return run % 2 == 1;
}

// True when the text may hold the escape \u0000 in a string (outside strings a backslash cannot
// occur in valid JSON); mark_nuls does the exact work. Sixteen positions at a time are tested
// for the start "\u0" and only those are looked at: a review's last-applied annotation is dense
// with backslashes (\"), so a search for the backslash alone, or memmem, stops far more often.
static bool
has_escaped_nul(const char *s, size_t n)
{
    bytes16 bs = {0}, u = {0}, zero = {0};
    bs += '\\';
    u += 'u';
    zero += '0';
    // Nothing before the first backslash can start an escape: glibc's memchr passes that part
    // (all of a body without escapes) at a fraction of the cost of the loop below.
    const char *first = memchr(s, '\\', n);
    if (first == NULL)
        return false;
    size_t i = (size_t)(first - s);
    for (; i + 18 <= n; i += 16) {
        bytes16 a, b, c;
        memcpy(&a, s + i, sizeof a);
        memcpy(&b, s + i + 1, sizeof b);
        memcpy(&c, s + i + 2, sizeof c);
        bytes16 hit = (bytes16)((a == bs) & (b == u) & (c == zero));
        uint64_t half[2];
        memcpy(half, &hit, sizeof half);
        if ((half[0] | half[1]) == 0)
            continue;
        for (size_t k = i; k < i + 16; k++)
            if (escaped_nul_at(s, n, k))
                return true;
    }
    for (; i < n; i++)
        if (escaped_nul_at(s, n, i))
            return true;
    return false;
}

// ---- what cJSON cannot hold: NUL in a string, nesting past CJSON_NESTING_LIMIT -----------------
//
// cJSON decodes \u0000 into a C string that ends there, so "orders\u0000-prod" would read as
// "orders" and two keys differing after a NUL would look the same. A body with the escape is
// parsed from a copy in which, inside strings, \u0000 becomes U+FDD0 U+FDD1 and U+FDD0 itself
// (escaped or not) becomes U+FDD0 U+FDD0: U+FDD0 is a noncharacter, so the marked strings stand
// one-to-one for the real ones, and the review can still be answered with its uid.
#define MARK "\xEF\xB7\x90"          // U+FDD0
#define MARK_NUL MARK "\xEF\xB7\x91" // U+FDD0 U+FDD1: a NUL
#define MARK_LEN 3

static bool
hex4_is(const char *p, const char *want)
{
    for (int i = 0; i < 4; i++)
        if (p[i] != want[i] && p[i] != want[i] - 32 * (want[i] >= 'a'))
            return false;
    return true;
}

// The marked copy of a body (at most twice its length). Invalid JSON is copied as it comes: the
// parse refuses it afterwards.
static char *
mark_nuls(const char *s, size_t n, size_t *out_len)
{
    char *out = xmalloc(2 * n + 1), *q = out;
    bool in_string = false;
    for (size_t i = 0; i < n;) {
        if (!in_string) {
            in_string = s[i] == '"';
            *q++ = s[i++];
        } else if (s[i] == '\\' && i + 6 <= n && s[i + 1] == 'u' &&
                   (hex4_is(s + i + 2, "0000") || hex4_is(s + i + 2, "fdd0"))) {
            bool nul = hex4_is(s + i + 2, "0000");
            memcpy(q, nul ? "\\ufdd0\\ufdd1" : "\\ufdd0\\ufdd0", 12);
            q += 12;
            i += 6;
        } else if (s[i] == '\\' && i + 1 < n) {
            *q++ = s[i++];
            *q++ = s[i++];
        } else if (i + MARK_LEN <= n && memcmp(s + i, MARK, MARK_LEN) == 0) {
            memcpy(q, MARK MARK, 2 * MARK_LEN);
            q += 2 * MARK_LEN;
            i += MARK_LEN;
        } else {
            in_string = s[i] != '"';
            *q++ = s[i++];
        }
    }
    *q = '\0';
    *out_len = (size_t)(q - out);
    return out;
}

// A marked string back as it was sent, or NULL when it holds a NUL (a C string cannot).
static char *
unmark(const char *s)
{
    char *out = xstrdup(s), *q = out;
    for (const char *p = s; *p;) {
        if (strncmp(p, MARK_NUL, 2 * MARK_LEN) == 0) {
            free(out);
            return NULL;
        }
        size_t step = strncmp(p, MARK MARK, 2 * MARK_LEN) == 0 ? 2 * MARK_LEN : 1;
        memmove(q, p, step == 1 ? 1 : MARK_LEN);
        q += step == 1 ? 1 : MARK_LEN;
        p += step;
    }
    *q = '\0';
    return out;
}

// Appends to a path for a message: ".key" or "[i]", cut (with "...") at the buffer's end; a
// NUL shows as \u0000 and other control characters as '?', so the message stays one line.
static void
path_append(char *path, size_t cap, const char *key, int index)
{
    size_t len = strlen(path);
    char piece[96];
    if (key == NULL) {
        snprintf(piece, sizeof piece, "[%d]", index);
    } else {
        size_t k = 0;
        piece[k++] = '.';
        for (const char *p = key; *p && k < 60;) {
            if (strncmp(p, MARK_NUL, 2 * MARK_LEN) == 0) {
                memcpy(piece + k, "\\u0000", 6);
                k += 6;
                p += 2 * MARK_LEN;
            } else if (strncmp(p, MARK MARK, 2 * MARK_LEN) == 0) {
                memcpy(piece + k, MARK, MARK_LEN);
                k += MARK_LEN;
                p += 2 * MARK_LEN;
            } else {
                unsigned char c = (unsigned char)*p++;
                piece[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
            }
        }
        while (k > 1 && ((unsigned char)piece[k - 1] & 0xC0) == 0x80 && k >= 60)
            k--; // a cut key ends on a whole character
        piece[k] = '\0';
    }
    if (len + strlen(piece) + 4 >= cap) {
        if (len + 4 < cap && strcmp(path + len - 3 * (len >= 3), "...") != 0)
            strcat(path, "...");
        return;
    }
    strcat(path, piece);
}

// Finds the first key or string under `node` that holds a NUL, and writes its path. The tree is
// at most CJSON_NESTING_LIMIT deep, so the recursion is bounded.
static bool
find_nul(const cJSON *node, char *path, size_t cap)
{
    size_t len = strlen(path);
    int i = 0;
    for (const cJSON *c = node->child; c != NULL; c = c->next, i++) {
        bool keyed = (node->type & 0xFF) == cJSON_Object;
        path_append(path, cap, keyed ? (c->string ? c->string : "") : NULL, i);
        if ((keyed && c->string != NULL && strstr(c->string, MARK_NUL) != NULL) ||
            (cJSON_IsString(c) && strstr(c->valuestring, MARK_NUL) != NULL))
            return true;
        if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && find_nul(c, path, cap))
            return true;
        path[len] = '\0';
    }
    return false;
}

// cJSON holds CJSON_NESTING_LIMIT levels. The API server's decoder holds 10 000, and its review
// puts the object 2 levels down: no review it sends nests deeper than this.
#define REVIEW_NESTING_MAX 10002

struct span {
    size_t at, len;
};

struct spans {
    struct span *v;
    size_t n, cap;
};

// Skips the string that starts at s[i] (a quote); returns the index after it, or n.
static size_t
skip_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

// The deepest nesting of brackets in s, or -1 when they do not balance or a string is not closed.
static long
nesting_of(const char *s, size_t n)
{
    long depth = 0, max = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, n, i);
            if (i == n && (n == 0 || s[n - 1] != '"'))
                return -1;
            continue;
        }
        if (c == '[' || c == '{')
            max = ++depth > max ? depth : max;
        else if ((c == ']' || c == '}') && --depth < 0)
            return -1;
        i++;
    }
    return depth == 0 ? max : -1;
}

// Copies s with every container that opens below `limit` levels replaced by null, and adds the
// spans replaced (offsets in s, plus `base`) to `cut`. The brackets balance (nesting_of).
static char *
flatten(const char *s, size_t n, long limit, size_t base, struct spans *cut, size_t *out_len)
{
    // "null" is longer than "[]": at most twice the text.
    char *out = xmalloc(2 * n + 1), *q = out;
    long depth = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '"') {
            size_t end = skip_string(s, n, i);
            memcpy(q, s + i, end - i);
            q += end - i;
            i = end;
            continue;
        }
        if ((c == '[' || c == '{') && depth == limit) {
            size_t j = i, d = 0;
            do {
                if (s[j] == '"') {
                    j = skip_string(s, n, j);
                    continue;
                }
                d += s[j] == '[' || s[j] == '{';
                d -= s[j] == ']' || s[j] == '}';
                j++;
            } while (d > 0 && j < n);
            if (cut->n == cut->cap) {
                cut->cap = cut->cap ? 2 * cut->cap : 16;
                cut->v = xrealloc(cut->v, cut->cap * sizeof *cut->v);
            }
            cut->v[cut->n++] = (struct span){base + i, j - i};
            memcpy(q, "null", 4);
            q += 4;
            i = j;
            continue;
        }
        depth += c == '[' || c == '{';
        depth -= c == ']' || c == '}';
        *q++ = c;
        i++;
    }
    *q = '\0';
    *out_len = (size_t)(q - out);
    return out;
}

static bool has_duplicate_keys(const cJSON *node);

static cJSON *
parse_one(const char *s, size_t n, const char **end)
{
    const char *e = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, &e, 0);
    if (end != NULL)
        *end = e;
    return j;
}

static bool
only_space(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
            return false;
    return true;
}

// Parses a text cJSON refused because it nests deeper than CJSON_NESTING_LIMIT. The containers
// below that level become null in the tree returned; each is first parsed on its own the same
// way (into plain malloc, then dropped) so the whole text is still checked as JSON without
// duplicate keys. Each byte is parsed about once. Returns NULL with a reason in err.
static cJSON *
parse_deep(const char *s, size_t n, struct review_chunk **arena, char *err, size_t errlen)
{
    long depth = nesting_of(s, n);
    if (depth <= CJSON_NESTING_LIMIT) {
        snprintf(err, errlen, "body is not valid JSON");
        return NULL;
    }
    if (depth > REVIEW_NESTING_MAX) {
        snprintf(err, errlen, "body nests %ld levels deep, more than the %d the API server reads",
                 depth, REVIEW_NESTING_MAX);
        return NULL;
    }
    struct spans cut = {0};
    size_t flat_len;
    char *flat = flatten(s, n, CJSON_NESTING_LIMIT, 0, &cut, &flat_len);
    const char *why = NULL;
    for (size_t k = 0; k < cut.n && why == NULL; k++) {
        struct span sp = cut.v[k];
        size_t len;
        char *piece = flatten(s + sp.at, sp.len, CJSON_NESTING_LIMIT, sp.at, &cut, &len);
        const char *end;
        cJSON *j = parse_one(piece, len, &end);
        if (j == NULL || !only_space(end, piece + len))
            why = "body is not valid JSON";
        else if (has_duplicate_keys(j))
            why = "body has duplicate object keys";
        cJSON_Delete(j);
        free(piece);
    }
    cJSON *root = NULL;
    if (why == NULL) {
        const char *end;
        arena_enter(arena);
        root = parse_one(flat, flat_len, &end);
        arena_leave();
        if (root != NULL && !only_space(end, flat + flat_len)) {
            why = "trailing data after the JSON document";
            arena_enter(arena); // its nodes go back to where they came from
            cJSON_Delete(root);
            arena_leave();
            root = NULL;
        } else if (root == NULL) {
            why = "body is not valid JSON";
        }
    }
    free(cut.v);
    free(flat);
    if (why != NULL) {
        snprintf(err, errlen, "%s", why);
        return NULL;
    }
    return root;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *
key_of(const cJSON *c)
{
    return c->string ? c->string : "";
}

// Objects with up to this many keys (nearly all of them) are checked pair by pair, which needs
// no allocation and no sort; larger ones are sorted.
enum { DUP_PAIRWISE_MAX = 16 };

static bool
object_has_duplicate_keys(const cJSON *obj)
{
    const char *seen[DUP_PAIRWISE_MAX];
    size_t n = 0;
    const cJSON *c = obj->child;
    for (; c != NULL && n < DUP_PAIRWISE_MAX; c = c->next) {
        const char *k = key_of(c);
        for (size_t i = 0; i < n; i++)
            if (seen[i][0] == k[0] && strcmp(seen[i], k) == 0)
                return true;
        seen[n++] = k;
    }
    if (c == NULL)
        return false;
    for (; c != NULL; c = c->next)
        n++;
    const char **keys = xmalloc(n * sizeof *keys);
    size_t i = 0;
    for (c = obj->child; c != NULL; c = c->next)
        keys[i++] = key_of(c);
    qsort(keys, n, sizeof *keys, cmp_str);
    bool dup = false;
    for (i = 1; i < n && !dup; i++)
        dup = strcmp(keys[i - 1], keys[i]) == 0;
    free(keys);
    return dup;
}

// The API server never sends duplicate keys; a body that has them is not one it sent, and
// two readers could disagree on which value counts. Checked over the whole tree.
static bool
has_duplicate_keys(const cJSON *node)
{
    for (; node != NULL; node = node->next) {
        // The type test of cJSON_IsObject and cJSON_IsArray, without a library call per node.
        int type = node->type & 0xFF;
        if (type == cJSON_Object && object_has_duplicate_keys(node))
            return true;
        if ((type == cJSON_Object || type == cJSON_Array) && has_duplicate_keys(node->child))
            return true;
    }
    return false;
}

// Reads an optional string member: absent or null gives def; any other non-string is an error.
static int
opt_string(const cJSON *obj, const char *key, const char *def, const char **out)
{
    const cJSON *v = json_get(obj, key);
    if (v == NULL || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsString(v))
        return -1;
    *out = v->valuestring;
    return 0;
}

static int
fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

static int
decode_user(const cJSON *request, struct review_request *req, char *err, size_t errlen)
{
    const cJSON *user = json_get(request, "userInfo");
    req->username = "";
    if (user == NULL || cJSON_IsNull(user))
        return 0;
    if (!cJSON_IsObject(user))
        return fail(err, errlen, "request.userInfo is not an object");
    if (opt_string(user, "username", "", &req->username) != 0)
        return fail(err, errlen, "request.userInfo.username is not a string");
    const cJSON *groups = json_get(user, "groups");
    if (groups == NULL || cJSON_IsNull(groups))
        return 0;
    if (!cJSON_IsArray(groups))
        return fail(err, errlen, "request.userInfo.groups is not an array");
    size_t n = (size_t)cJSON_GetArraySize(groups);
    req->groups = xcalloc(n, sizeof *req->groups);
    const cJSON *g;
    cJSON_ArrayForEach(g, groups)
    {
        if (!cJSON_IsString(g))
            return fail(err, errlen, "request.userInfo.groups holds a non-string");
        req->groups[req->group_count++] = g->valuestring;
    }
    return 0;
}

// Parses the body into req->root (in an arena, see above): as it is, or from its marked copy
// when it holds an escaped NUL, or flattened when it nests deeper than cJSON holds.
static int
parse_body(const char *body, size_t len, struct review_request *req, char *err, size_t errlen)
{
    size_t n = len;
    char *marked = NULL;
    if (has_escaped_nul(body, len)) {
        marked = mark_nuls(body, len, &n);
        req->marked = true;
    }
    const char *text = marked ? marked : body, *end = NULL;
    struct review_chunk *arena = NULL;
    // A parsed review takes a little over three times the bytes of its text.
    tl_first = n < 4096 ? 16384 : 4 * n;
    arena_enter(REVIEW_ARENA ? &arena : NULL);
    req->root = parse_one(text, n, &end);
    arena_leave();
    int rc = 0;
    if (req->root == NULL) {
        req->root = parse_deep(text, n, REVIEW_ARENA ? &arena : NULL, err, errlen);
        req->deep = true;
        rc = req->root != NULL ? 0 : -1;
    } else if (!only_space(end, text + n)) {
        rc = fail(err, errlen, "trailing data after the JSON document");
    }
    req->arena = arena;
    free(marked);
    return rc;
}

// Says in req->unreadable why the review cannot be judged faithfully, if it cannot.
static int
unreadable(struct review_request *req)
{
    char path[256] = "";
    if (req->marked && find_nul(req->root, path, sizeof path))
        req->unreadable =
            xasprintf("%s holds an escaped NUL character (\\u0000), which tableguard cannot read "
                      "faithfully: remove it",
                      path[0] == '.' ? path + 1 : path);
    else if (req->deep)
        req->unreadable = xasprintf("the review nests deeper than the %d levels tableguard's JSON "
                                    "reader holds (up to %d come from the API server): nest the "
                                    "object's free-form properties less deeply",
                                    CJSON_NESTING_LIMIT, REVIEW_NESTING_MAX);
    return 0;
}

int
review_decode(const char *body, size_t len, struct review_request *req, char *err, size_t errlen)
{
    memset(req, 0, sizeof *req);
    req->op = REVIEW_UNKNOWN;
    if (len == 0)
        return fail(err, errlen, "empty body");
    if (!utf8_valid((const unsigned char *)body, len))
        return fail(err, errlen, "body is not valid UTF-8");
    if (memchr(body, '\0', len) != NULL)
        return fail(err, errlen, "body holds a NUL byte");
    if (parse_body(body, len, req, err, errlen) != 0)
        return -1;
    const cJSON *root = req->root;
    if (!cJSON_IsObject(root))
        return fail(err, errlen, "body is not a JSON object");
    if (has_duplicate_keys(root))
        return fail(err, errlen, "body has duplicate object keys");
    const char *api = NULL, *kind = NULL;
    if (opt_string(root, "apiVersion", NULL, &api) != 0 || api == NULL ||
        strcmp(api, "admission.k8s.io/v1") != 0)
        return fail(err, errlen, "apiVersion is not admission.k8s.io/v1");
    if (opt_string(root, "kind", NULL, &kind) != 0 || kind == NULL ||
        strcmp(kind, "AdmissionReview") != 0)
        return fail(err, errlen, "kind is not AdmissionReview");
    const cJSON *request = json_get(root, "request");
    if (!cJSON_IsObject(request))
        return fail(err, errlen, "request is missing or not an object");
    if (opt_string(request, "uid", NULL, &req->uid) != 0 || req->uid == NULL || req->uid[0] == '\0')
        return fail(err, errlen, "request.uid is missing or not a non-empty string");
    if (req->marked) {
        // The API server's uids are UUIDs: one with a NUL is not from it.
        if ((req->uid_copy = unmark(req->uid)) == NULL)
            return fail(err, errlen, "request.uid holds an escaped NUL character (\\u0000)");
        req->uid = req->uid_copy;
    }
    if (opt_string(request, "operation", NULL, &req->operation) != 0 || req->operation == NULL)
        return fail(err, errlen, "request.operation is missing or not a string");
    enum review_operation op = REVIEW_CREATE;
    while (op < REVIEW_UNKNOWN && strcmp(req->operation, OPERATIONS[op]) != 0)
        op++;
    if (op == REVIEW_UNKNOWN)
        return fail(err, errlen, "request.operation is not CREATE, UPDATE, DELETE or CONNECT");
    req->op = op;
    if (opt_string(request, "namespace", "", &req->namespace) != 0)
        return fail(err, errlen, "request.namespace is not a string");
    if (opt_string(request, "name", "", &req->name) != 0)
        return fail(err, errlen, "request.name is not a string");
    const cJSON *resource = json_get(request, "resource");
    if (resource != NULL && !cJSON_IsNull(resource) && !cJSON_IsObject(resource))
        return fail(err, errlen, "request.resource is not an object");
    if (opt_string(resource, "group", "", &req->group) != 0 ||
        opt_string(resource, "version", "", &req->version) != 0 ||
        opt_string(resource, "resource", "", &req->resource) != 0)
        return fail(err, errlen, "request.resource holds a non-string field");
    const cJSON *dry = json_get(request, "dryRun");
    if (dry != NULL && !cJSON_IsNull(dry) && !cJSON_IsBool(dry))
        return fail(err, errlen, "request.dryRun is not a boolean");
    req->dry_run = cJSON_IsTrue(dry);
    if (decode_user(request, req, err, errlen) != 0)
        return -1;
    req->object = json_get(request, "object");
    req->old_object = json_get(request, "oldObject");
    // The namespace of a namespaced object is in the request; fall back to the object's own.
    if (req->namespace[0] == '\0') {
        const char *ns = json_str(json_get(req->object, "metadata"), "namespace");
        if (ns != NULL)
            req->namespace = ns;
    }
    return unreadable(req);
}

void
review_request_free(struct review_request *req)
{
    if (req == NULL)
        return;
    if (req->arena != NULL)
        arena_release(req->arena);
    else
        cJSON_Delete(req->root);
    free(req->groups);
    free(req->uid_copy);
    free(req->unreadable);
    memset(req, 0, sizeof *req);
}

static char *
base64(const char *s, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

static void
oom_if_null(const void *p)
{
    if (p == NULL) {
        fprintf(stderr, "tableguard: out of memory encoding a response\n");
        abort();
    }
}

// ---- the answer --------------------------------------------------------------------------------
//
// The answer is written straight into one buffer (util/jsonw, which escapes strings as cJSON
// prints them): a tree of a dozen nodes printed by cJSON cost more than the rest of the answer's
// work (a third of a denied guarded object's review). The bytes are the same as before; a unit
// test compares the two.
char *
review_encode(const struct review_response *r, size_t *len)
{
    char *b64 = NULL;
    if (r->patch_json != NULL) {
        b64 = base64(r->patch_json, strlen(r->patch_json));
    } else if (r->patch != NULL && cJSON_GetArraySize(r->patch) > 0) {
        char *ops = cJSON_PrintUnformatted(r->patch);
        oom_if_null(ops);
        b64 = base64(ops, strlen(ops));
        cJSON_free(ops);
    }
    struct jsonw w = {0};
    if (b64 != NULL) // the rest of an answer fits in the first 4 KiB, a patch may not
        jsonw_reserve(&w, 512 + strlen(b64));
    jsonw_lit(&w, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                  "\"response\":{\"uid\":");
    jsonw_str(&w, r->uid);
    if (r->allowed)
        jsonw_lit(&w, ",\"allowed\":true");
    else
        jsonw_lit(&w, ",\"allowed\":false");
    if (b64 != NULL) {
        jsonw_lit(&w, ",\"patchType\":\"JSONPatch\",\"patch\":\"");
        jsonw_raw(&w, b64, strlen(b64));
        jsonw_lit(&w, "\"");
    }
    if (!r->allowed) {
        jsonw_lit(&w, ",\"status\":{\"code\":403,\"reason\":\"Forbidden\",\"message\":");
        jsonw_str(&w, r->message ? r->message : "denied");
        jsonw_lit(&w, "}");
    }
    for (size_t i = 0; i < r->warning_count; i++) {
        if (i == 0)
            jsonw_lit(&w, ",\"warnings\":[");
        else
            jsonw_lit(&w, ",");
        jsonw_str(&w, r->warnings[i]);
    }
    if (r->warning_count > 0)
        jsonw_lit(&w, "]");
    jsonw_lit(&w, ",\"auditAnnotations\":{\"decision\":");
    jsonw_str(&w, r->audit_decision);
    if (r->audit_patched)
        jsonw_lit(&w, ",\"patched\":\"true\"");
    // The cluster's audit event does not carry the review's uid: this joins it to our record.
    if (r->audit_request_uid != NULL) {
        jsonw_lit(&w, ",\"request-uid\":");
        jsonw_str(&w, r->audit_request_uid);
    }
    if (r->audit_rules != NULL && r->audit_rules[0] != '\0') {
        jsonw_lit(&w, ",\"rules\":");
        jsonw_str(&w, r->audit_rules);
    }
    if (r->audit_exceptions != NULL && r->audit_exceptions[0] != '\0') {
        jsonw_lit(&w, ",\"exceptions\":");
        jsonw_str(&w, r->audit_exceptions);
    }
    jsonw_lit(&w, "}}}");
    free(b64);
    *len = w.len;
    return w.buf;
}

char *
review_error_body(const char *message, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    oom_if_null(root);
    cJSON_AddStringToObject(root, "error", message);
    char *out = cJSON_PrintUnformatted(root);
    oom_if_null(out);
    cJSON_Delete(root);
    *len = strlen(out);
    return out;
}

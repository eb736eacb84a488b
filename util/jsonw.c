// SPDX-License-Identifier: Apache-2.0
// JSON text written straight into a growing buffer, byte for byte as cJSON prints it.
#include "util/jsonw.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

void
jsonw_grow(struct jsonw *w, size_t n)
{
    size_t cap = w->cap ? w->cap : 4096;
    while (cap <= w->len + n)
        cap *= 2;
    w->buf = xrealloc(w->buf, cap);
    w->cap = cap;
}

// What a byte becomes inside a string: 0 copied as it is, 'u' as \u00xx, else a backslash and
// this letter. cJSON escapes the same bytes the same way (print_string_ptr).
static const char ESCAPE[256] = {
    ['\b'] = 'b',  ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't', ['"'] = '"',
    ['\\'] = '\\', [0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',
    [0x05] = 'u',  [0x06] = 'u', [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u',
    [0x10] = 'u',  [0x11] = 'u', [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u',
    [0x16] = 'u',  [0x17] = 'u', [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u',
    [0x1c] = 'u',  [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u',
};

// The end of the run of bytes from p that need no escape. Eight bytes at a time: a word holds
// a byte to escape when it has a byte below 0x20, a '"' or a '\\' (the usual "has a zero byte"
// test; a word flagged wrongly only sends the bytes to the exact loop below).
static const unsigned char *
plain_run(const unsigned char *p, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        uint64_t hit = ((x - ones * 0x20) | (q - ones) | (b - ones)) & ~x & highs;
        if (hit != 0)
            break;
        p += 8;
    }
    while (p < end && ESCAPE[*p] == 0)
        p++;
    return p;
}

void
jsonw_str(struct jsonw *w, const char *s)
{
    if (s == NULL)
        s = "";
    size_t n = strlen(s);
    // The worst case (every byte \u00xx) is reserved once, so the loop writes without checks.
    jsonw_reserve(w, 6 * n + 2);
    char *o = w->buf + w->len;
    *o++ = '"';
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        const unsigned char *run = p;
        p = plain_run(p, end);
        memcpy(o, run, (size_t)(p - run));
        o += p - run;
        if (p == end)
            break;
        char e = ESCAPE[*p];
        *o++ = '\\';
        *o++ = e;
        if (e == 'u') {
            static const char hex[] = "0123456789abcdef";
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
        p++;
    }
    *o++ = '"';
    *o = '\0';
    w->len = (size_t)(o - w->buf);
}

void
jsonw_str_or_null(struct jsonw *w, const char *s)
{
    if (s == NULL)
        jsonw_lit(w, "null");
    else
        jsonw_str(w, s);
}

size_t
jsonw_format_uint(char *dst, uint64_t v)
{
    char digits[JSONW_UINT_MAX];
    size_t n = 0;
    do {
        digits[sizeof digits - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    memcpy(dst, digits + sizeof digits - n, n);
    return n;
}

void
jsonw_uint(struct jsonw *w, uint64_t v)
{
    jsonw_reserve(w, JSONW_UINT_MAX);
    w->len += jsonw_format_uint(w->buf + w->len, v);
    w->buf[w->len] = '\0';
}

void
jsonw_bool(struct jsonw *w, bool v)
{
    if (v)
        jsonw_lit(w, "true");
    else
        jsonw_lit(w, "false");
}

void
jsonw_free(struct jsonw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

// SPDX-License-Identifier: Apache-2.0
// JSON text written straight into a growing buffer, byte for byte as cJSON prints it.
#ifndef TABLEGUARD_JSONW_H
#define TABLEGUARD_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// For text built on every request (the audit record), where building a cJSON tree only to print
// it costs more than the text. The caller writes the punctuation and keys; the module writes
// values. Strings are escaped exactly as cJSON_PrintUnformatted escapes them: '"', '\\', and the
// control characters below 0x20 (\b \f \n \r \t, the others as \u00xx with lowercase hex); every
// other byte, including DEL and bytes >= 0x80 (UTF-8 or not), is copied as it is. So a reader
// that parses the text with cJSON and prints it again gets the same bytes.
//
// Zero-initialise a struct jsonw; jsonw_free releases its buffer (buf is NUL-terminated after
// every write, and NULL before the first). Out of memory aborts (util/xalloc).
struct jsonw {
    char *buf;
    size_t len, cap;
};

// Grows the buffer for n more bytes (and the terminating NUL); use jsonw_reserve.
void jsonw_grow(struct jsonw *w, size_t n);

// Makes room for n more bytes (and the terminating NUL).
static inline void
jsonw_reserve(struct jsonw *w, size_t n)
{
    if (w->len + n >= w->cap)
        jsonw_grow(w, n);
}

// Appends n bytes as they are: punctuation, keys, or JSON text printed elsewhere. Inline: a
// record is mostly short literals, whose copy the compiler then makes a few moves.
static inline void
jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
    jsonw_reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

// A string literal as it is: jsonw_lit(w, ",\"uid\":").
#define jsonw_lit(w, s) jsonw_raw((w), "" s, sizeof(s) - 1)

// s quoted and escaped; NULL is written as "" (as cJSON prints a string item without a value).
void jsonw_str(struct jsonw *w, const char *s);

// s quoted and escaped, or null when s is NULL.
void jsonw_str_or_null(struct jsonw *w, const char *s);

// A non-negative integer, in decimal.
void jsonw_uint(struct jsonw *w, uint64_t v);

// v in decimal at dst, which has room for JSONW_UINT_MAX bytes; returns the length (no NUL).
#define JSONW_UINT_MAX 20
size_t jsonw_format_uint(char *dst, uint64_t v);

// true or false.
void jsonw_bool(struct jsonw *w, bool v);

// Releases the buffer; the struct is empty again. jsonw_free on an empty struct is a no-op.
void jsonw_free(struct jsonw *w);

#endif

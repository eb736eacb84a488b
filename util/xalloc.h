// SPDX-License-Identifier: Apache-2.0
// Allocation that aborts with a message when memory runs out, so callers need no NULL checks.
#ifndef TABLEGUARD_XALLOC_H
#define TABLEGUARD_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
// Makes room for one more element in an array that holds `count` elements of `size` bytes and
// was grown only by xgrow (NULL when count is 0), and returns it. The capacity is implied by the
// count (the next power of two, at least 4), so it doubles as the array fills: n appends cost
// O(n) in all, where growing by one element each time costs O(n^2).
void *xgrow(void *p, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
// Returns a newly allocated formatted string; the caller frees it.
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Returns the concatenation of its string arguments up to a NULL, newly allocated. For text
// built on every request (a denial's messages), where a format string costs more than the copy.
char *xconcat(const char *first, ...) __attribute__((sentinel));

#endif

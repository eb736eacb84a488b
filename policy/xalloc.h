// SPDX-License-Identifier: Apache-2.0
// Allocation that aborts with a message when memory runs out, so callers need no NULL checks.
#ifndef TABLEGUARD_XALLOC_H
#define TABLEGUARD_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
// Returns a newly allocated formatted string; the caller frees it.
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Returns the concatenation of its string arguments up to a NULL, newly allocated. For text
// built on every request (a denial's messages), where a format string costs more than the copy.
char *xconcat(const char *first, ...) __attribute__((sentinel));

#endif

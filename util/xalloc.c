// SPDX-License-Identifier: Apache-2.0
// Allocation that aborts with a message when memory runs out.
#include "util/xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
oom(size_t n)
{
    fprintf(stderr, "tableguard: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

void *
xgrow(void *p, size_t count, size_t size)
{
    if (count == 0)
        return xrealloc(p, 4 * size);
    if (count < 4 || (count & (count - 1)) != 0)
        return p; // not full yet
    if (count > SIZE_MAX / 2 / size)
        oom(SIZE_MAX);
    return xrealloc(p, 2 * count * size);
}

char *
xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    return s;
}

char *
xconcat(const char *first, ...)
{
    // Each piece is measured once: a message is some twenty pieces, and thousands are built
    // for a denial of a large Application. Pieces past the first XCONCAT_KEPT are measured again.
    enum { XCONCAT_KEPT = 48 };
    size_t lens[XCONCAT_KEPT];
    va_list ap;
    size_t n = 0, i = 0;
    va_start(ap, first);
    for (const char *p = first; p != NULL; p = va_arg(ap, const char *), i++) {
        size_t k = strlen(p);
        if (i < XCONCAT_KEPT)
            lens[i] = k;
        n += k;
    }
    va_end(ap);
    char *out = xmalloc(n + 1), *q = out;
    va_start(ap, first);
    i = 0;
    for (const char *p = first; p != NULL; p = va_arg(ap, const char *), i++) {
        size_t k = i < XCONCAT_KEPT ? lens[i] : strlen(p);
        memcpy(q, p, k);
        q += k;
    }
    va_end(ap);
    *q = '\0';
    return out;
}

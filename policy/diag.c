// SPDX-License-Identifier: Apache-2.0
// Diagnostics: a growing list of {file, line, col, message} records, formatted when printed.
#include "policy/diag.h"

#include <stdarg.h>
#include <stdlib.h>

#include "util/xalloc.h"

void
diag_add(struct diag *d, const char *file, unsigned long line, unsigned long col, const char *fmt,
         ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (d->count == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->items = xrealloc(d->items, d->cap * sizeof *d->items);
    }
    d->items[d->count++] = (struct diag_entry){xstrdup(file), line, col, xstrdup(msg)};
}

// The sort key of an entry: its place, then the order it was added in (qsort is not stable).
struct keyed {
    struct diag_entry e;
    size_t seq;
};

static int
cmp_keyed(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if (x->e.line != y->e.line)
        return x->e.line < y->e.line ? -1 : 1;
    if (x->e.col != y->e.col)
        return x->e.col < y->e.col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void
diag_sort(struct diag *d, size_t first)
{
    if (first >= d->count || d->count - first < 2)
        return;
    size_t n = d->count - first;
    struct keyed *k = xcalloc(n, sizeof *k);
    for (size_t i = 0; i < n; i++)
        k[i] = (struct keyed){d->items[first + i], i};
    qsort(k, n, sizeof *k, cmp_keyed);
    for (size_t i = 0; i < n; i++)
        d->items[first + i] = k[i].e;
    free(k);
}

char *
diag_format(const struct diag_entry *e)
{
    if (e->line > 0 && e->col > 0)
        return xasprintf("%s:%lu:%lu: %s", e->file, e->line, e->col, e->message);
    if (e->line > 0)
        return xasprintf("%s:%lu: %s", e->file, e->line, e->message);
    return xasprintf("%s: %s", e->file, e->message);
}

void
diag_print(const struct diag *d, FILE *f)
{
    for (size_t i = 0; i < d->count; i++) {
        char *line = diag_format(&d->items[i]);
        fprintf(f, "%s\n", line);
        free(line);
    }
}

void
diag_free(struct diag *d)
{
    for (size_t i = 0; i < d->count; i++) {
        free(d->items[i].file);
        free(d->items[i].message);
    }
    free(d->items);
    d->items = NULL;
    d->count = d->cap = 0;
}

// SPDX-License-Identifier: Apache-2.0
// Diagnostics: a growing list of "file:line:col: message" lines.
#include "policy/diag.h"

#include <stdarg.h>
#include <stdio.h>
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

    char *out;
    if (line > 0 && col > 0)
        out = xasprintf("%s:%lu:%lu: %s", file, line, col, msg);
    else if (line > 0)
        out = xasprintf("%s:%lu: %s", file, line, msg);
    else
        out = xasprintf("%s: %s", file, msg);
    if (d->count == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->lines = xrealloc(d->lines, d->cap * sizeof *d->lines);
    }
    d->lines[d->count++] = out;
}

void
diag_free(struct diag *d)
{
    for (size_t i = 0; i < d->count; i++)
        free(d->lines[i]);
    free(d->lines);
    d->lines = NULL;
    d->count = d->cap = 0;
}

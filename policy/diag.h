// SPDX-License-Identifier: Apache-2.0
// Diagnostics: a growing list of "file:line:col: message" lines that loaders fill and callers
// print.
#ifndef TABLEGUARD_DIAG_H
#define TABLEGUARD_DIAG_H

#include <stddef.h>

// A list of diagnostic lines. Zero-initialise it ({0}); diag_free releases what it holds.
struct diag {
    char **lines;
    size_t count;
    size_t cap;
};

// Appends one line "FILE:LINE:COL: MESSAGE" (line and col 1-based; 0 leaves them out).
void diag_add(struct diag *d, const char *file, unsigned long line, unsigned long col,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

// Releases every line; the list is empty and reusable afterwards.
void diag_free(struct diag *d);

#endif

// SPDX-License-Identifier: Apache-2.0
// Diagnostics as data: {file, line, col, message} records that loaders fill and callers sort,
// format and print as "file:line:col: message".
#ifndef TABLEGUARD_DIAG_H
#define TABLEGUARD_DIAG_H

#include <stddef.h>
#include <stdio.h>

// One diagnostic. line and col are 1-based; 0 leaves them out of the text. Owned by the list.
struct diag_entry {
    char *file;
    unsigned long line, col;
    char *message;
};

// A list of diagnostics. Zero-initialise it ({0}); diag_free releases what it holds.
struct diag {
    struct diag_entry *items;
    size_t count;
    size_t cap;
};

// Appends one diagnostic (line and col 1-based; 0 leaves them out).
void diag_add(struct diag *d, const char *file, unsigned long line, unsigned long col,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

// Puts the entries from index `first` on in file order: by line, then column, equal ones in
// the order they were added (a loader checks section by section, not line by line).
void diag_sort(struct diag *d, size_t first);

// The text of one entry, "FILE:LINE:COL: MESSAGE" (or "FILE:LINE: MESSAGE", "FILE: MESSAGE"),
// newly allocated; the caller frees it.
char *diag_format(const struct diag_entry *e);

// Writes every entry's text to f, one a line. The one way a command prints diagnostics.
void diag_print(const struct diag *d, FILE *f);

// Releases every entry; the list is empty and reusable afterwards.
void diag_free(struct diag *d);

#endif

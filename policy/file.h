// SPDX-License-Identifier: Apache-2.0
// Reading a whole file that someone else controls (policy, certificates, keys) without blocking.
#ifndef TABLEGUARD_FILE_H
#define TABLEGUARD_FILE_H

#include <stddef.h>

// Reads all of `path` into a new NUL-terminated buffer (the caller frees it) and sets *len.
// The file is opened with O_NONBLOCK and must be a regular file: a FIFO, socket, device or
// directory is refused at once instead of blocking the reader. Returns NULL with a reason in
// err (without the path) when the file cannot be opened or read, is not a regular file, or is
// larger than `max` bytes.
char *file_read(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#endif

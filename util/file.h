// SPDX-License-Identifier: Apache-2.0
// Whole files in and durable renames out: the file helpers every module shares.
#ifndef TABLEGUARD_FILE_H
#define TABLEGUARD_FILE_H

#include <stddef.h>
#include <stdio.h>

// Reads all of `path` into a new NUL-terminated buffer (the caller frees it) and sets *len.
// The file is opened with O_NONBLOCK and must be a regular file: a FIFO, socket, device or
// directory is refused at once instead of blocking the reader (a policy or certificate path
// someone else controls). Returns NULL with a reason in why (without the path: "cannot open:
// REASON", "cannot read: REASON", "is a FIFO, not a regular file", "file is larger than N
// bytes") when the file cannot be opened or read, is not a regular file, or is larger than max.
char *file_read(const char *path, size_t max, size_t *len, char *why, size_t whylen);

// Opens `path` for reading as a stream, refused at once like file_read when it is not a regular
// file, but not read into memory (an audit log of any size). Returns NULL with why filled.
FILE *file_open_stream(const char *path, char *why, size_t whylen);

// The same for a stream already open (standard input), read to its end; it stays open.
char *file_read_stream(FILE *f, size_t max, size_t *len, char *why, size_t whylen);

// Flushes the directory that holds path, so that a file created or renamed there survives a
// host crash. Best effort: a failure leaves the entry as durable as the file system makes it.
void file_sync_dir(const char *path);

#endif

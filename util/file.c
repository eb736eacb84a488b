// SPDX-License-Identifier: Apache-2.0
// Whole-file reads that cannot hang on a FIFO or a device and cannot grow without bound, and
// directory fsync after a rename.
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

static const char *
kind_of(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    return "not a regular file";
}

// Reads fd to its end into a new buffer, at most max bytes; `cap` is the first guess of the
// size. The buffer grows geometrically, so a file of any size costs O(size).
static char *
read_fd(int fd, size_t cap, size_t max, size_t *len, char *why, size_t whylen)
{
    size_t n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                snprintf(why, whylen, "file is larger than %zu bytes", max);
                goto fail;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(why, whylen, "cannot read: %s", strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n > max) {
        snprintf(why, whylen, "file is larger than %zu bytes", max);
        goto fail;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    free(buf);
    return NULL;
}

// Opens path for reading, refusing at once what is not a regular file. Returns the descriptor
// (blocking again: a regular file never waits for a writer) and its status, or -1 with why.
static int
open_regular(const char *path, struct stat *st, char *why, size_t whylen)
{
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer for ever.
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0) {
        snprintf(why, whylen, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(st->st_mode)) {
        snprintf(why, whylen, "is %s, not a regular file", kind_of(st->st_mode));
    } else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

char *
file_read(const char *path, size_t max, size_t *len, char *why, size_t whylen)
{
    struct stat st;
    int fd = open_regular(path, &st, why, whylen);
    if (fd < 0)
        return NULL;
    // The size is a hint: the file may change while it is read, so the cap is checked on what
    // was read.
    size_t cap = st.st_size > 0 && (size_t)st.st_size < max ? (size_t)st.st_size + 1 : 4096;
    char *buf = read_fd(fd, cap, max, len, why, whylen);
    close(fd);
    return buf;
}

FILE *
file_open_stream(const char *path, char *why, size_t whylen)
{
    struct stat st;
    int fd = open_regular(path, &st, why, whylen);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (fd >= 0 && f == NULL) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
        close(fd);
    }
    return f;
}

char *
file_read_stream(FILE *f, size_t max, size_t *len, char *why, size_t whylen)
{
    return read_fd(fileno(f), 4096, max, len, why, whylen);
}

void
file_sync_dir(const char *path)
{
    char *copy = xstrdup(path);
    int d = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        (void)fsync(d);
        close(d);
    }
    free(copy);
}

// SPDX-License-Identifier: Apache-2.0
// Scratch directories for unit tests: made with mkdtemp, removed with everything in them.
#ifndef TABLEGUARD_TEST_TMPDIR_H
#define TABLEGUARD_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int
tmpdir_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

// Removes `dir` and all it holds. Returns 0, or -1 when something could not be removed.
static inline int
tmpdir_remove(const char *dir)
{
    return nftw(dir, tmpdir_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#endif

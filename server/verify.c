// SPDX-License-Identifier: Apache-2.0
// `tableguard audit verify`: walks audit log files in chain order and reports the first record
// that was modified, deleted, inserted or reordered, and checkpoints that are missing.
#include "server/verify.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/chain.h"
#include "server/recview.h"
#include "util/file.h"
#include "util/xalloc.h"

#define CHECKPOINTS_MAX 32

struct checkpoint {
    uint64_t seq;
    char hash[CHAIN_HASH_HEX + 1]; // empty: only the presence of seq is checked
    bool seen;
};

struct verifier {
    struct chain chain;
    struct checkpoint cp[CHECKPOINTS_MAX];
    size_t ncp;
    bool have;      // a record was seen
    uint64_t first; // seq of the first record seen
    struct chain_record last;
    const char *last_file;
    size_t last_line;
    struct recview *view; // reads a line as chain_parse_line does, without a tree when it can
};

struct vfile {
    const char *name;
    uint64_t first; // seq of its first record; 0 unreadable; UINT64_MAX empty
    size_t order;
    struct chain_head head; // its first record
};

static void
verify_usage(FILE *out)
{
    fprintf(out, "usage: tableguard audit verify [--hmac-key FILE] [--checkpoint SEQ[:HASH]]... "
                 "[--sealed] FILE...\n");
}

// Reads the seq of a file's first record so files can be given in any order.
static int
verify_first_seq(struct vfile *f)
{
    char why[256];
    FILE *in = file_open_stream(f->name, why, sizeof why);
    if (in == NULL) {
        printf("%s: %s\n", f->name, why);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, in);
    f->first = UINT64_MAX;
    if (n > 0) {
        if (line[n - 1] == '\n')
            n--;
        chain_read_head(line, (size_t)n, &f->head);
        f->first = f->head.found ? f->head.rec.seq : 0;
    }
    free(line);
    fclose(in);
    return 0;
}

static int
vfile_cmp(const void *x, const void *y)
{
    const struct vfile *a = x, *b = y;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

// Checks one line against the chain so far. Returns 0, or -1 with msg filled.
static int
verify_line(struct verifier *v, char *line, size_t len, char *msg, size_t msglen)
{
    struct chain_record p;
    size_t body;
    char digest[CHAIN_HASH_HEX + 1];
    if (v->view == NULL)
        v->view = recview_new();
    if (recview_read(v->view, line, len, false, &p, &body, msg, msglen) == NULL)
        return -1;
    if (chain_digest(&v->chain, line, body, digest) < 0) {
        chain_seterr(msg, msglen, "digest failed");
        return -1;
    }
    if (strcmp(digest, p.hash) != 0) {
        chain_seterr(msg, msglen, "hash mismatch: the record was modified%s",
                     v->chain.key != NULL ? " (or the HMAC key is wrong)"
                                          : " (or the log is HMAC-chained: pass --hmac-key)");
        return -1;
    }
    if (v->have && p.seq != v->last.seq + 1) {
        chain_seterr(msg, msglen,
                     "seq %" PRIu64 " where %" PRIu64
                     " was expected: records were deleted, inserted "
                     "or reordered",
                     p.seq, v->last.seq + 1);
        return -1;
    }
    if (v->have && strcmp(p.prev, v->last.hash) != 0) {
        chain_seterr(msg, msglen,
                     "prev does not match the hash of seq %" PRIu64
                     " (%s:%zu): the chain is broken",
                     v->last.seq, v->last_file, v->last_line);
        return -1;
    }
    if (!v->have && p.seq == 1 && strcmp(p.prev, CHAIN_GENESIS) != 0) {
        chain_seterr(msg, msglen, "seq 1 must have the genesis prev (64 zeros)");
        return -1;
    }
    for (size_t i = 0; i < v->ncp; i++) {
        if (v->cp[i].seq != p.seq)
            continue;
        v->cp[i].seen = true;
        if (v->cp[i].hash[0] && strcmp(v->cp[i].hash, p.hash) != 0) {
            chain_seterr(msg, msglen, "seq %" PRIu64 " has hash %s but the checkpoint says %s",
                         p.seq, p.hash, v->cp[i].hash);
            return -1;
        }
    }
    if (!v->have)
        v->first = p.seq;
    v->have = true;
    v->last = p;
    return 0;
}

// Walks one file. next: the file that continues the chain, NULL for the last. Returns 0
// intact, 1 broken.
static int
verify_file(struct verifier *v, const char *name, const struct vfile *next)
{
    char why[256];
    FILE *in = file_open_stream(name, why, sizeof why);
    if (in == NULL) {
        printf("%s: %s\n", name, why);
        return 1;
    }
    char *line = NULL, msg[1024];
    size_t cap = 0, lineno = 0, count = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') {
            printf("%s:%zu: incomplete record without a newline: the file was truncated\n", name,
                   lineno);
            rc = 1;
            break;
        }
        if (verify_line(v, line, (size_t)n - 1, msg, sizeof(msg)) < 0) {
            printf("%s:%zu: %s\n", name, lineno, msg);
            rc = 1;
            break;
        }
        v->last_file = name;
        v->last_line = lineno;
        count++;
    }
    if (rc == 0 && ferror(in)) {
        printf("%s: read error\n", name);
        rc = 1;
    }
    if (rc == 0 && next != NULL && count > 0 &&
        chain_file_end(&v->last, name, &next->head, next->name, msg, sizeof(msg)) < 0) {
        printf("%s:%zu: %s\n", name, lineno, msg);
        rc = 1;
    }
    if (rc == 0)
        printf("%s: OK (%zu records)\n", name, count);
    free(line);
    fclose(in);
    return rc;
}

static int
parse_checkpoint(struct verifier *v, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long seq = strtoull(s, &end, 10);
    if (v->ncp == CHECKPOINTS_MAX || errno || seq == 0 || end == s || *s == '-' ||
        (*end && (*end != ':' || !chain_is_hex64(end + 1, strlen(end + 1)))))
        return -1;
    struct checkpoint *c = &v->cp[v->ncp++];
    c->seq = seq;
    snprintf(c->hash, sizeof(c->hash), "%s", *end ? end + 1 : "");
    return 0;
}

// Checkpoints and --sealed, once every file is walked. Returns 0 intact, 1 broken.
static int
verify_end(const struct verifier *v, bool sealed)
{
    for (size_t i = 0; i < v->ncp; i++)
        if (!v->cp[i].seen) {
            if (v->have)
                printf("checkpoint %" PRIu64 ": not in the files given (they hold seq %" PRIu64
                       "..%" PRIu64 "): records are missing\n",
                       v->cp[i].seq, v->first, v->last.seq);
            else
                printf("checkpoint %" PRIu64 ": the files given hold no records\n", v->cp[i].seq);
            return 1;
        }
    bool closed =
        v->have && (strcmp(v->last.event, "stop") == 0 || strcmp(v->last.event, "rotate") == 0);
    if (sealed && v->have && !closed) {
        printf("%s:%zu: the log ends at seq %" PRIu64 " without a stop or rotate record: its "
               "tail was truncated or its writer stopped uncleanly\n",
               v->last_file, v->last_line, v->last.seq);
        return 1;
    }
    if (!v->have) {
        printf("chain OK: no records\n");
        return 0;
    }
    printf("chain OK: seq %" PRIu64 "..%" PRIu64 ", last hash %s\n", v->first, v->last.seq,
           v->last.hash);
    if (v->first != 1)
        printf("note: the chain starts at seq %" PRIu64 "; earlier records are in files not "
               "given (or rotated away)\n",
               v->first);
    if (strcmp(v->last.event, "rotate") == 0)
        printf("note: the chain continues in a newer file not given\n");
    else if (!closed)
        printf("note: the last record is not a stop record: the log is live or its writer "
               "stopped uncleanly; only a checkpoint (--checkpoint) detects a cut tail\n");
    return 0;
}

int
verify_main(int argc, char **argv)
{
    struct verifier v;
    memset(&v, 0, sizeof(v));
    bool sealed = false;
    int rc = 2, c;
    size_t nfiles = 0, last_nonempty = 0;
    struct vfile *files = xcalloc((size_t)(argc > 0 ? argc : 1), sizeof(*files));
    static const struct option longs[] = {{"hmac-key", required_argument, NULL, 'k'},
                                          {"checkpoint", required_argument, NULL, 'c'},
                                          {"sealed", no_argument, NULL, 's'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    // Options may come before or after the files (getopt_long permutes); "--" ends them.
    optind = 0;
    opterr = 0; // an unknown option gets the usage line, as before
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        char err[256];
        if (c == 'h') {
            verify_usage(stdout);
            rc = 0;
            goto out;
        } else if (c == 's') {
            sealed = true;
        } else if (c == 'k' && v.chain.key == NULL) {
            if (chain_load_key(&v.chain, optarg, err, sizeof(err)) < 0) {
                fprintf(stderr, "tableguard audit verify: %s\n", err);
                goto out;
            }
        } else if (c == 'c') {
            if (parse_checkpoint(&v, optarg) < 0) {
                fprintf(stderr, "tableguard audit verify: --checkpoint wants SEQ or SEQ:HASH "
                                "(64 lowercase hex digits)\n");
                goto out;
            }
        } else {
            verify_usage(stderr);
            goto out;
        }
    }
    for (int i = optind; i < argc; i++) {
        files[nfiles] = (struct vfile){.name = argv[i], .order = nfiles};
        nfiles++;
    }
    if (nfiles == 0) {
        verify_usage(stderr);
        goto out;
    }
    for (size_t k = 0; k < nfiles; k++)
        if (verify_first_seq(&files[k]) < 0)
            goto out;
    qsort(files, nfiles, sizeof(*files), vfile_cmp);
    for (size_t k = 0; k < nfiles; k++)
        if (files[k].first != UINT64_MAX)
            last_nonempty = k;
    rc = 0;
    for (size_t k = 0; k < nfiles && rc == 0; k++)
        rc = verify_file(&v, files[k].name, k < last_nonempty ? &files[k + 1] : NULL);
    if (rc == 0)
        rc = verify_end(&v, sealed);
out:
    free(files);
    recview_free(v.view);
    chain_free(&v.chain);
    return rc;
}

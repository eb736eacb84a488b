// SPDX-License-Identifier: Apache-2.0
// inotify on the directories of mounted files, debounced, with a polling backstop.
#include "server/watch.h"

#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "util/xalloc.h"

#define WATCH_MAX 8
#define DEBOUNCE_MS 100
#define DEBOUNCE_MAX_MS 1000

struct entry {
    int wd;
    watch_fn fn;
    void *arg;
    bool dirty;
};

struct watch {
    int ino, stop, kick;
    unsigned interval_s;
    struct entry entries[WATCH_MAX];
    size_t count;
    pthread_t thread;
    bool started;
};

struct watch *
watch_new(unsigned interval_s, char *err, size_t errlen)
{
    struct watch *w = xcalloc(1, sizeof *w);
    w->interval_s = interval_s ? interval_s : 10;
    w->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->stop < 0 || w->kick < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        watch_free(w);
        return NULL;
    }
    // Without inotify (exhausted instances) the polling backstop still works.
    return w;
}

int
watch_add(struct watch *w, const char *path, watch_fn fn, void *arg, char *err, size_t errlen)
{
    if (w->count == WATCH_MAX) {
        snprintf(err, errlen, "too many watched paths");
        return -1;
    }
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    struct entry *e = &w->entries[w->count++];
    e->fn = fn;
    e->arg = arg;
    e->wd = w->ino >= 0 ? inotify_add_watch(w->ino, dir,
                                            IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM |
                                                IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB |
                                                IN_DELETE_SELF | IN_MOVE_SELF)
                        : -1;
    free(copy);
    return 0;
}

static void
drain_events(struct watch *w)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->ino, buf, sizeof buf);
        if (n <= 0)
            return;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            for (size_t i = 0; i < w->count; i++)
                if (w->entries[i].wd == ev->wd)
                    w->entries[i].dirty = true;
            p += sizeof *ev + ev->len;
        }
    }
}

static void *
run(void *arg)
{
    struct watch *w = arg;
    struct pollfd fds[3] = {{.fd = w->stop, .events = POLLIN},
                            {.fd = w->kick, .events = POLLIN},
                            {.fd = w->ino, .events = POLLIN}};
    for (;;) {
        int n = poll(fds, w->ino >= 0 ? 3 : 2, (int)w->interval_s * 1000);
        if (n < 0 && errno != EINTR)
            return NULL;
        if (fds[0].revents & POLLIN)
            return NULL;
        uint64_t kicks = 0;
        bool timeout = n == 0 || ((fds[1].revents & POLLIN) && read(w->kick, &kicks, 8) == 8);
        if (n > 0 && (fds[2].revents & POLLIN)) {
            // A swap is several events (new dir, symlink, rename, removal): let them settle,
            // but never longer than DEBOUNCE_MAX_MS, or a file written without pause beside
            // the policy would put the reload off for ever.
            int waited = 0;
            do {
                drain_events(w);
                waited += DEBOUNCE_MS;
            } while (waited < DEBOUNCE_MAX_MS && poll(&fds[2], 1, DEBOUNCE_MS) > 0);
        }
        for (size_t i = 0; i < w->count; i++) {
            struct entry *e = &w->entries[i];
            if (timeout || e->dirty) {
                e->dirty = false;
                e->fn(e->arg);
            }
        }
    }
}

int
watch_start(struct watch *w, char *err, size_t errlen)
{
    int rc = pthread_create(&w->thread, NULL, run, w);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        return -1;
    }
    w->started = true;
    return 0;
}

void
watch_kick(struct watch *w)
{
    uint64_t one = 1;
    if (w != NULL && write(w->kick, &one, sizeof one) < 0)
        return; // the counter is full: a kick is already pending
}

int
watch_stop(struct watch *w, unsigned wait_s)
{
    if (w == NULL || !w->started)
        return 0;
    uint64_t one = 1;
    ssize_t r = write(w->stop, &one, sizeof one);
    (void)r;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_s;
    if (pthread_timedjoin_np(w->thread, NULL, &until) != 0)
        return -1;
    w->started = false;
    return 0;
}

void
watch_free(struct watch *w)
{
    if (w == NULL)
        return;
    if (w->started) {
        uint64_t one = 1;
        ssize_t r = write(w->stop, &one, sizeof one);
        (void)r;
        pthread_join(w->thread, NULL);
    }
    if (w->ino >= 0)
        close(w->ino);
    if (w->stop >= 0)
        close(w->stop);
    if (w->kick >= 0)
        close(w->kick);
    free(w);
}

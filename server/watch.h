// SPDX-License-Identifier: Apache-2.0
// Change notices for mounted files: inotify on the directories that hold them (Kubernetes swaps
// a ConfigMap's or Secret's "..data" symlink, which a watch on the file itself misses), debounced,
// with a polling backstop for filesystems where inotify says nothing.
#ifndef TABLEGUARD_WATCH_H
#define TABLEGUARD_WATCH_H

#include <stddef.h>

typedef void (*watch_fn)(void *arg);

struct watch;

// Creates a watcher that calls every callback at least every `interval_s` seconds. Callbacks run
// on the watcher's own thread, one at a time.
struct watch *watch_new(unsigned interval_s, char *err, size_t errlen);
// Calls fn(arg) soon after anything changes in the directory holding `path`. Before watch_start.
int watch_add(struct watch *w, const char *path, watch_fn fn, void *arg, char *err, size_t errlen);
int watch_start(struct watch *w, char *err, size_t errlen);
// Asks the watcher's thread to call every callback now, and returns at once: a signal handler
// thread that must stay free for SIGTERM never runs a reload itself.
void watch_kick(struct watch *w);
// Stops the thread, waiting at most `wait_s` seconds for a callback in progress. Returns 0 when
// it stopped; -1 when a callback is still running, and then the watcher and whatever its
// callbacks use must be left alone (the process is about to exit).
int watch_stop(struct watch *w, unsigned wait_s);
// Stops the thread (waiting as long as it takes) and frees; watch_free(NULL) is a no-op.
void watch_free(struct watch *w);

#endif

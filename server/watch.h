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
// Stops the thread and frees; watch_free(NULL) is a no-op.
void watch_free(struct watch *w);

#endif

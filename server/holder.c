// SPDX-License-Identifier: Apache-2.0
// A mutex-guarded slot for the current version of a reference-counted object. The lock is held
// only to copy a pointer and bump a count, never across I/O.
#include "server/holder.h"

#include <pthread.h>
#include <stdlib.h>

#include "util/xalloc.h"

struct holder {
    pthread_mutex_t lock;
    const struct holder_type *type;
    void *obj;
};

struct holder *
holder_new(const struct holder_type *type, void *obj)
{
    struct holder *h = xcalloc(1, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    h->type = type;
    h->obj = obj;
    return h;
}

void *
holder_get(struct holder *h)
{
    pthread_mutex_lock(&h->lock);
    void *obj = h->obj ? h->type->ref(h->obj) : NULL;
    pthread_mutex_unlock(&h->lock);
    return obj;
}

void
holder_set(struct holder *h, void *obj)
{
    pthread_mutex_lock(&h->lock);
    void *old = h->obj;
    h->obj = obj;
    pthread_mutex_unlock(&h->lock);
    if (old != NULL)
        h->type->unref(old);
}

void
holder_free(struct holder *h)
{
    if (h == NULL)
        return;
    if (h->obj != NULL)
        h->type->unref(h->obj);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

// SPDX-License-Identifier: Apache-2.0
// The body budget: bytes of admission bodies held at once (reserved from Content-Length before
// the body is read) stay within a limit; a request that does not fit waits, suspended, in
// arrival order. Without it memory grows with connections x body cap.
#include "server/budget.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/xalloc.h"
#include "server/log.h"

struct budget {
    pthread_mutex_t lock;
    size_t limit;
    size_t body_bytes;                            // reserved by requests being read or answered
    struct budget_ticket *waiting, *waiting_tail; // FIFO of suspended requests
    size_t waiting_count;
    bool off; // stopping: nobody waits any more
};

struct budget *
budget_new(size_t limit)
{
    struct budget *b = xcalloc(1, sizeof *b);
    b->limit = limit;
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

void
budget_free(struct budget *b)
{
    if (b == NULL)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

enum budget_grant
budget_reserve(struct budget *b, struct MHD_Connection *c, struct budget_ticket *t, size_t want,
               bool may_wait)
{
    enum budget_grant g = BUDGET_NOW;
    pthread_mutex_lock(&b->lock);
    bool now = b->off || (b->waiting == NULL && b->body_bytes + want <= b->limit);
    if (now) {
        b->body_bytes += want;
        t->reserved = want;
    } else if (!may_wait) {
        g = BUDGET_NO_ROOM;
    } else {
        g = BUDGET_WAITING;
        t->want = want;
        t->conn = c;
        t->waiting = true;
        if (b->waiting_tail != NULL)
            b->waiting_tail->next = t;
        else
            b->waiting = t;
        b->waiting_tail = t;
        b->waiting_count++;
        // Under the lock, so the release that resumes it cannot come before the suspend.
        MHD_suspend_connection(c);
        char held[24], n[24];
        snprintf(held, sizeof held, "%zu", b->body_bytes);
        snprintf(n, sizeof n, "%zu", want);
        log_msg(LOGL_DEBUG, "request waits for room under --body-memory", "bytes", n, "held", held,
                NULL);
    }
    pthread_mutex_unlock(&b->lock);
    return g;
}

// Takes waiting requests off the queue's head while they fit (all of them when stopping), and
// resumes them. Called with the lock held.
static void
admit_locked(struct budget *b)
{
    while (b->waiting != NULL) {
        struct budget_ticket *w = b->waiting;
        size_t want = w->want;
        if (!b->off && b->body_bytes + want > b->limit)
            break;
        b->waiting = w->next;
        if (b->waiting == NULL)
            b->waiting_tail = NULL;
        b->waiting_count--;
        w->next = NULL;
        w->waiting = false;
        b->body_bytes += want;
        w->reserved = want;
        MHD_resume_connection(w->conn);
        char n[24], held[24];
        snprintf(n, sizeof n, "%zu", want);
        snprintf(held, sizeof held, "%zu", b->body_bytes);
        log_msg(LOGL_DEBUG, "waiting request admitted under --body-memory", "bytes", n, "held",
                held, NULL);
    }
}

void
budget_release(struct budget *b, struct budget_ticket *t)
{
    pthread_mutex_lock(&b->lock);
    if (t->waiting) {
        // Completed while waiting (the daemon is stopping): out of the queue.
        struct budget_ticket **pp = &b->waiting, *prev = NULL;
        while (*pp != NULL && *pp != t) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp == t) {
            *pp = t->next;
            if (b->waiting_tail == t)
                b->waiting_tail = prev;
            b->waiting_count--;
        }
        t->waiting = false;
    }
    b->body_bytes -= t->reserved;
    t->reserved = 0;
    admit_locked(b);
    pthread_mutex_unlock(&b->lock);
}

void
budget_stop(struct budget *b)
{
    pthread_mutex_lock(&b->lock);
    b->off = true;
    admit_locked(b);
    pthread_mutex_unlock(&b->lock);
}

void
budget_gauges(struct budget *b, size_t *held, size_t *waiting)
{
    pthread_mutex_lock(&b->lock);
    *held = b->body_bytes;
    *waiting = b->waiting_count;
    pthread_mutex_unlock(&b->lock);
}

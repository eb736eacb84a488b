// SPDX-License-Identifier: Apache-2.0
// The body budget: bytes of admission bodies held at once (reserved from Content-Length before
// the body is read) stay within a limit; a request that does not fit waits, suspended, in
// arrival order, until room frees or its wait ends (a thread of its own resumes it then:
// libmicrohttpd does not time out a suspended connection). Without it memory grows with
// connections x body cap.
#include "server/budget.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/mono.h"
#include "util/xalloc.h"
#include "server/log.h"

struct budget {
    pthread_mutex_t lock;
    size_t limit;
    size_t body_bytes;                            // reserved by requests being read or answered
    struct budget_ticket *waiting, *waiting_tail; // FIFO of suspended requests
    size_t waiting_count;
    bool off; // stopping: nobody waits any more

    // The thread that ends waits: it sleeps on `wake` until the earliest end.
    pthread_cond_t wake;
    pthread_t timer;
    bool quit;
};

static bool
bounded(const struct timespec *t)
{
    return t->tv_sec != 0 || t->tv_nsec != 0;
}

static bool
before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void admit_locked(struct budget *b);

// Takes t (at *pp, after prev) out of the queue. Called with the lock held.
static void
unlink_locked(struct budget *b, struct budget_ticket **pp, struct budget_ticket *prev)
{
    struct budget_ticket *t = *pp;
    *pp = t->next;
    if (b->waiting_tail == t)
        b->waiting_tail = prev;
    b->waiting_count--;
    t->next = NULL;
    t->waiting = false;
}

// Resumes, holding nothing, every waiting request whose wait has ended; then the ones behind
// them that now fit. Sets *next to the earliest end still ahead; false when none is.
static bool
expire_locked(struct budget *b, struct timespec *next)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    bool any = false;
    struct budget_ticket **pp = &b->waiting, *prev = NULL;
    while (*pp != NULL) {
        struct budget_ticket *t = *pp;
        if (bounded(&t->until) && !before(&now, &t->until)) {
            unlink_locked(b, pp, prev);
            t->expired = true;
            MHD_resume_connection(t->conn);
            char n[24];
            snprintf(n, sizeof n, "%zu", t->want);
            log_msg(LOGL_DEBUG, "wait for room under --body-memory ended; the body is read through",
                    "bytes", n, NULL);
            continue;
        }
        if (bounded(&t->until) && (!any || before(&t->until, next))) {
            *next = t->until;
            any = true;
        }
        prev = t;
        pp = &t->next;
    }
    admit_locked(b); // a request that left the head may have held up others that fit
    return any;
}

static void *
timer_main(void *arg)
{
    struct budget *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!b->quit) {
        struct timespec next;
        if (expire_locked(b, &next))
            pthread_cond_timedwait(&b->wake, &b->lock, &next);
        else
            pthread_cond_wait(&b->wake, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

struct budget *
budget_new(size_t limit)
{
    struct budget *b = xcalloc(1, sizeof *b);
    b->limit = limit;
    pthread_mutex_init(&b->lock, NULL);
    mono_cond_init(&b->wake);
    if (pthread_create(&b->timer, NULL, timer_main, b) != 0) {
        fprintf(stderr, "tableguard: cannot start a thread\n");
        abort();
    }
    return b;
}

void
budget_free(struct budget *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->lock);
    b->quit = true;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->timer, NULL);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

enum budget_grant
budget_reserve(struct budget *b, struct MHD_Connection *c, struct budget_ticket *t, size_t want,
               bool may_wait, const struct timespec *until)
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
        t->until = until != NULL ? *until : (struct timespec){0, 0};
        if (bounded(&t->until))
            pthread_cond_signal(&b->wake); // the timer sleeps until the earliest end
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
        unlink_locked(b, &b->waiting, NULL);
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
        if (*pp == t)
            unlink_locked(b, pp, prev);
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

bool
budget_expired(struct budget *b, const struct budget_ticket *t)
{
    pthread_mutex_lock(&b->lock);
    bool expired = t->expired;
    pthread_mutex_unlock(&b->lock);
    return expired;
}

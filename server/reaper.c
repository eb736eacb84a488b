// SPDX-License-Identifier: Apache-2.0
// The header deadline. Every connection of the HTTPS listener has a record here, from accept to
// close, saying where its current request stands; a thread looks at them four times a second
// and shuts down (shutdown(2), so libmicrohttpd sees the end of the stream and closes the
// connection itself) each one whose request began more than the timeout ago and has still not
// sent its headers. A request begins with the connection's accept for its first request (its TLS
// handshake included), and with its first bytes after the previous answer otherwise (found from
// the kernel's last-receive time, since libmicrohttpd says nothing before the whole request line
// is read).
// A connection waiting for its client's next request is never closed here: only its idle
// timeout closes it, later than the API server's own keep-alive.
//
// Safety across threads: the records are read and written under one lock; libmicrohttpd calls
// the closing notice before it closes the socket, and the notice takes the lock, so a shutdown
// under the lock never reaches a socket number already given to another connection.
#include "server/reaper.h"

#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "util/mono.h"
#include "util/xalloc.h"
#include "server/log.h"

// Seconds between two looks at the connections.
#define REAPER_PERIOD 0.25
// Bytes the kernel received up to this long after a connection began to wait were sent before
// (its clock counts in ticks of a few milliseconds).
#define REAPER_SLACK 0.02

enum phase {
    P_HANDSHAKE, // accepted; the TLS handshake is the start of its first request
    P_WAITING,   // between requests (or after the handshake): no deadline until bytes arrive
    P_HEADERS,   // the request line is read, the headers are not complete
    P_BODY,      // the headers are complete: the request's own deadline applies (http.c)
};

struct reaper_conn {
    struct reaper *r;
    MHD_socket fd;
    size_t slot; // its index in r->conns
    enum phase phase;
    double since; // when it entered its phase
    bool begun;   // its current request has begun
    double began; // when
    bool shut;    // shut down here; closing
};

struct reaper {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, stop;
    double timeout;
    struct metrics *metrics;
    struct reaper_conn **conns;
    size_t count, cap;
    double last_look;
};

// GnuTLS's hook has only the session to go by (libmicrohttpd sets its pointer to the connection),
// so the way from a connection to its record is kept here, for the one server of the process; set
// before any connection is accepted.
static struct reaper_conn *(*record_of_conn)(struct MHD_Connection *c);

struct reaper *
reaper_new(unsigned timeout_s, struct metrics *m,
           struct reaper_conn *(*record_of)(struct MHD_Connection *c))
{
    struct reaper *r = xcalloc(1, sizeof *r);
    r->timeout = timeout_s;
    r->metrics = m;
    record_of_conn = record_of;
    pthread_mutex_init(&r->lock, NULL);
    mono_cond_init(&r->wake);
    r->last_look = mono_now();
    return r;
}

// When the kernel last received data on the socket, on the clock of mono_now; -1 if unknown.
static double
last_data_at(MHD_socket fd, double now)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof ti.tcpi_last_data_recv)
        return -1;
    return now - ti.tcpi_last_data_recv / 1000.0;
}

// One look at every connection: shuts down those past the deadline. Returns how many.
static size_t
look(struct reaper *r, double now)
{
    size_t closed = 0;
    for (size_t i = 0; i < r->count; i++) {
        struct reaper_conn *rc = r->conns[i];
        if (rc->shut || rc->phase == P_BODY)
            continue;
        if (rc->phase == P_WAITING && !rc->begun) {
            // Bytes since it began to wait start its next request. They arrived after the
            // previous look, which would have seen them, unless it began to wait since.
            double at = last_data_at(rc->fd, now);
            if (at > rc->since + REAPER_SLACK) {
                rc->begun = true;
                rc->began = rc->since > r->last_look ? rc->since : r->last_look;
            }
        }
        if (rc->begun && now - rc->began > r->timeout) {
            shutdown(rc->fd, SHUT_RDWR);
            rc->shut = true;
            closed++;
        }
    }
    r->last_look = now;
    return closed;
}

static void *
run(void *arg)
{
    struct reaper *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        struct timespec until = mono_at(mono_now() + REAPER_PERIOD);
        while (!r->stop && pthread_cond_timedwait(&r->wake, &r->lock, &until) == 0)
            ;
        if (r->stop)
            break;
        size_t closed = look(r, mono_now());
        if (closed == 0)
            continue;
        pthread_mutex_unlock(&r->lock);
        for (size_t i = 0; i < closed; i++)
            metrics_rejected(r->metrics, METRICS_REJECT_TIMEOUT);
        char n[24];
        snprintf(n, sizeof n, "%zu", closed);
        log_msg(LOGL_WARN,
                "connections closed: a request not sent within --request-timeout (headers)",
                "connections", n, NULL);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int
reaper_start(struct reaper *r, char *err, size_t errlen)
{
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        snprintf(err, errlen, "cannot start the request deadline thread");
        return -1;
    }
    r->running = true;
    return 0;
}

void
reaper_stop(struct reaper *r)
{
    if (r == NULL || !r->running)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    r->running = false;
}

void
reaper_free(struct reaper *r)
{
    if (r == NULL)
        return;
    reaper_stop(r);
    for (size_t i = 0; i < r->count; i++)
        free(r->conns[i]);
    free(r->conns);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

// GnuTLS calls this on the connection's thread for each Finished message of the handshake; the
// client's one is the last it sends, and what it sends next is a request.
static int
on_finished(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
            const gnutls_datum_t *msg)
{
    (void)htype;
    (void)when;
    (void)msg;
    struct MHD_Connection *c = incoming ? gnutls_session_get_ptr(s) : NULL;
    struct reaper_conn *rc = c != NULL && record_of_conn != NULL ? record_of_conn(c) : NULL;
    if (rc == NULL)
        return 0;
    pthread_mutex_lock(&rc->r->lock);
    if (rc->phase == P_HANDSHAKE) {
        rc->phase = P_WAITING;
        rc->since = mono_now();
        rc->begun = false;
    }
    pthread_mutex_unlock(&rc->r->lock);
    return 0;
}

struct reaper_conn *
reaper_opened(struct reaper *r, struct MHD_Connection *c, const struct timespec *accepted)
{
    if (r == NULL)
        return NULL;
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *tls =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (fd == NULL)
        return NULL;
    struct reaper_conn *rc = xcalloc(1, sizeof *rc);
    rc->r = r;
    rc->fd = fd->connect_fd;
    rc->phase = P_HANDSHAKE;
    // The server accepts a connection before a worker starts it (a busy worker starts it
    // later): its handshake's deadline counts from accept.
    double now = mono_now(),
           at = accepted != NULL && accepted->tv_sec != 0 ? mono_seconds(accepted) : now;
    rc->since = rc->began = at < now ? at : now;
    rc->begun = true;
    if (tls != NULL && tls->tls_session != NULL)
        gnutls_handshake_set_hook_function(tls->tls_session, GNUTLS_HANDSHAKE_FINISHED,
                                           GNUTLS_HOOK_POST, on_finished);
    pthread_mutex_lock(&r->lock);
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->conns = xrealloc(r->conns, r->cap * sizeof *r->conns);
    }
    rc->slot = r->count;
    r->conns[r->count++] = rc;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void
reaper_closed(struct reaper *r, struct reaper_conn *rc)
{
    if (r == NULL || rc == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    struct reaper_conn *last = r->conns[--r->count];
    r->conns[rc->slot] = last;
    last->slot = rc->slot;
    pthread_mutex_unlock(&r->lock);
    free(rc);
}

static void
enter(struct reaper_conn *rc, enum phase p)
{
    if (rc == NULL)
        return;
    pthread_mutex_lock(&rc->r->lock);
    double now = mono_now();
    if (p == P_HEADERS && (!rc->begun || rc->phase == P_BODY)) {
        // It begins now unless its first bytes were seen earlier (or, after a handshake whose
        // end the hook did not see, with the handshake).
        rc->begun = true;
        rc->began = now;
    } else if (p == P_WAITING) {
        rc->begun = false;
    }
    rc->phase = p;
    rc->since = now;
    pthread_mutex_unlock(&rc->r->lock);
}

void
reaper_request_line(struct reaper_conn *rc)
{
    enter(rc, P_HEADERS);
}

void
reaper_headers_done(struct reaper_conn *rc)
{
    enter(rc, P_BODY);
}

void
reaper_request_done(struct reaper_conn *rc)
{
    enter(rc, P_WAITING);
}

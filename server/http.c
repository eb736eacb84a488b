// SPDX-License-Identifier: Apache-2.0
// The HTTP edge: routes, the body cap, the answer of each admission request after its audit
// record is written, /healthz and /readyz, /metrics, and the drain on shutdown.
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/mono.h"
#include "util/xalloc.h"
#include "server/admit.h"
#include "server/budget.h"
#include "server/log.h"
#include "server/reaper.h"
#include "server/review.h"
#include "server/unheld.h"
#include "server/wire.h"

struct request;

struct http {
    struct http_options opts;
    struct http_deps deps;
    struct MHD_Daemon *https, *plain;
    atomic_bool draining;
    atomic_int in_flight;
    atomic_int connections; // on the HTTPS listener, from accept to close (see hand_over)
    atomic_int holding;     // answers held for their records (struct held)
    atomic_bool no_holding; // stopping: records are written before their handler returns
    pthread_mutex_t held_lock;
    struct woken *woken; // per worker thread (see resume_held)
    pthread_mutex_t detail_lock;
    char *detail;
    char *cert_failure; // why the last certificate reload failed; NULL: it did not

    struct budget *budget; // admission bodies held at once, within opts.body_memory
    struct reaper *reaper; // closes requests whose headers miss the deadline; NULL without one

    // The HTTPS listener is the server's own (see acceptor_main): -1 once closed.
    int listen_fd;
    unsigned listen_port;
    int wake[2]; // a byte on wake[1] wakes the acceptor: a slot freed, or stop
    atomic_bool stop_accepting;
    pthread_t acceptor;
    bool has_acceptor;
    // When each HTTPS socket was accepted (CLOCK_MONOTONIC), by descriptor, for the header
    // deadline: written before the socket is handed to libmicrohttpd, read by the worker that
    // starts it (the hand-over passes through libmicrohttpd's lock, which orders the two).
    struct timespec *accepted_at;
    size_t accepted_cap;
    // libmicrohttpd's worker threads (1 without a pool), and how many reviews each is judging
    // (see steer).
    unsigned workers;
    atomic_int *judging;
};

// Per-request state, from the first call of the handler to the completion notice.
struct request {
    enum route { R_MUTATE, R_VALIDATE, R_HEALTH, R_OTHER } route;
    bool post;
    char *body;
    size_t len, cap;
    size_t announced; // Content-Length, 0 when absent (chunked)
    bool has_length;  // a Content-Length was given
    bool too_large;
    bool counted;                // in the in-flight gauge
    struct budget_ticket ticket; // its place in the body budget
    struct timespec start;
    bool begun;                    // the handler has seen the headers
    bool answered;                 // the answer is queued; the body and its budget are given back
    bool unheld;                   // no room in time: read through, keeping UNHELD_PREFIX bytes
    size_t kept;                   // bytes of the body kept in `body`
    bool reading;                  // past the first call after the headers: the body may be read
    struct timespec deadline_from; // the request line; again when the body may be read
    unsigned timeout_set;          // the connection timeout this request last set (0: none)
    size_t raw_uri_len;       // the request target's length up to its first NUL, before parsing
    size_t raw_uri_args;      // its '&' and '?' separators
    struct reaper_conn *conn; // its connection's record for the header deadline, or NULL
    struct held *held;        // its answer, held until its record is written; or NULL
};

// An answer held back, its connection suspended, while the audit log's writer writes its record
// with those of other requests (audit_submit); the writer resumes the connection, and the
// handler, called again, queues the answer.
struct held {
    struct audit_pending pend;
    struct MHD_Connection *c;
    enum admit_webhook w;
    struct admit_result res; // the answer and the record; the review and evaluation freed
    char *uid;               // the review's, for the log of a failed write
    struct http *h;
    unsigned worker;   // the worker thread serving its connection
    struct held *next; // in the list its waker resumes
};

// A worker's held answers whose records are written: the waker is resumed by the audit log's
// writer, and its handler resumes the others.
struct woken {
    struct held *waker;
    struct held *head, *tail;
};

// What the server keeps per HTTPS connection, as libmicrohttpd's socket context: its TLS transport
// and its record for the header deadline (either may be NULL).
struct conn {
    struct wire *wire;
    struct reaper_conn *reap;
};

static struct conn *
conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i != NULL ? i->socket_context : NULL;
}

// The connection's wire, or NULL (no TLS, or the metrics listener).
static struct wire *
conn_wire(struct MHD_Connection *c)
{
    struct conn *k = conn_of(c);
    return k != NULL ? k->wire : NULL;
}

static struct reaper_conn *
conn_reap(struct MHD_Connection *c)
{
    struct conn *k = conn_of(c);
    return k != NULL ? k->reap : NULL;
}

// A request target with more query arguments is refused: the API server sends
// "/validate?timeout=10s".
#define HTTP_MAX_ARGS 16

static enum MHD_Result
send_body(struct http *h, struct MHD_Connection *c, unsigned status, const char *type, char *body,
          size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        // The metrics listener serves GET and HEAD; the admission listener's 405s are for
        // /mutate and /validate, which take POST.
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);
        bool plain = ci != NULL && ci->daemon == h->plain;
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, plain ? "GET, HEAD" : "POST");
    }
    // While draining, keep-alive connections are closed after their answer so clients move to
    // replicas that stay.
    if (atomic_load(&h->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    // The header's TLS record leaves with the body's first record, in one write.
    struct wire *w = conn_wire(c);
    wire_answer(w, len);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    if (ret != MHD_YES)
        wire_answer_failed(w);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
send_error(struct http *h, struct MHD_Connection *c, unsigned status, const char *msg)
{
    size_t len;
    char *body = review_error_body(msg, &len);
    return send_body(h, c, status, "application/json", body, len, MHD_RESPMEM_MUST_FREE);
}

static bool
ready(struct http *h, char *why, size_t len)
{
    if (atomic_load(&h->draining)) {
        snprintf(why, len, "draining");
        return false;
    }
    void *p = holder_get(h->deps.policies);
    if (p == NULL) {
        snprintf(why, len, "no policy loaded");
        return false;
    }
    policy_unref(p);
    // Every answer would be a 500 while records cannot be written (--audit-failure closed): the
    // API server should send its reviews to a replica that can answer them.
    char failure[256];
    if (!h->opts.audit_fail_open && audit_writable(h->deps.audit, failure, sizeof failure) != 0) {
        snprintf(why, len, "the audit log cannot be written: %s", failure);
        return false;
    }
    pthread_mutex_lock(&h->detail_lock);
    // The previous certificate still serves, but the files in place do not load: whatever
    // replaced them (a renewal) has to be fixed before that certificate expires.
    bool cert_ok = h->cert_failure == NULL;
    if (cert_ok)
        snprintf(why, len, "%s", h->detail ? h->detail : "");
    else
        snprintf(why, len, "certificate reload failed, the previous certificate still serving: %s",
                 h->cert_failure);
    pthread_mutex_unlock(&h->detail_lock);
    return cert_ok;
}

// /healthz: the process serves. /readyz: policy and certificate loaded, not draining; the body
// carries the detail of a failed reload while the last good policy keeps serving.
static enum MHD_Result
health(struct http *h, struct MHD_Connection *c, const char *url)
{
    if (strcmp(url, "/healthz") == 0)
        return send_body(h, c, 200, "text/plain", "ok\n", 3, MHD_RESPMEM_PERSISTENT);
    char why[512];
    bool ok = ready(h, why, sizeof why);
    char *body = xasprintf("%s%s%s\n", ok ? "ok" : "not ready", why[0] ? ": " : "", why);
    return send_body(h, c, ok ? 200 : 503, "text/plain", body, strlen(body), MHD_RESPMEM_MUST_FREE);
}

// One use per exception that waived something in this request, however many findings it waived.
static void
count_exceptions(struct metrics *m, const struct eval_result *ev)
{
    for (size_t i = 0; i < ev->finding_count; i++) {
        const struct exception *e = ev->findings[i].exception;
        bool counted = false;
        for (size_t j = 0; e != NULL && j < i && !counted; j++)
            counted = ev->findings[j].exception == e;
        if (e != NULL && !counted)
            metrics_exception_used(m, e->name);
    }
}

// A body read through without being held: answered from a stand-in review made of its first
// bytes, with its uid. Its first bytes not showing a review with a uid, it is not one the API
// server sends: 400, as the whole body would have got.
static void
unheld_admit(struct http *h, const struct policy *p, const struct exceptions *x, long long now,
             enum admit_webhook w, const struct request *rq, struct admit_result *res)
{
    size_t len;
    char err[160];
    char *stand_in = unheld_review(rq->body, rq->kept, &len, err, sizeof err);
    if (stand_in == NULL) {
        memset(res, 0, sizeof *res);
        res->status = 400;
        res->decision = ADMIT_INVALID;
        res->operation = REVIEW_UNKNOWN;
        char *why = xasprintf("the body could not be held under --body-memory and its first %zu "
                              "bytes are not an AdmissionReview: %s",
                              rq->kept, err);
        res->body = review_error_body(why, &res->body_len);
        free(why);
    } else {
        char why[160];
        snprintf(why, sizeof why,
                 "--body-memory (%zu bytes) was in use by other requests until its wait for room "
                 "ended",
                 h->opts.body_memory);
        struct admit_unheld u = {.bytes = rq->len, .why = why};
        admit_handle_unheld(p, x, now, w, stand_in, len, &u, h->deps.audit != NULL, res);
        free(stand_in);
    }
}

// The worker thread serving a connection: libmicrohttpd 0.9.75 gives an added socket to the
// worker of its number modulo the pool's size, which always has room (see http_start).
static unsigned
worker_of(struct http *h, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return fd != NULL ? (unsigned)fd->connect_fd % h->workers : 0;
}

static atomic_int *
judging_of(struct http *h, struct MHD_Connection *c)
{
    return h->workers > 1 ? &h->judging[worker_of(h, c)] : NULL;
}

static enum MHD_Result admission_judged(struct http *h, struct MHD_Connection *c,
                                        struct request *rq);
static enum MHD_Result answer(struct http *h, struct MHD_Connection *c, struct request *rq,
                              enum admit_webhook w, struct admit_result *res, struct policy *p,
                              struct exceptions *x);
static void resume_held(struct audit_pending *pend);
static bool hold(struct http *h, struct MHD_Connection *c, struct request *rq, enum admit_webhook w,
                 struct admit_result *res, struct policy *p, struct exceptions *x);
static void audit_failed(struct http *h, struct admit_result *res, const char *uid,
                         const char *err);

// A worker judging a review serves nothing else until it is done: the acceptor steers new
// connections away from it meanwhile.
static enum MHD_Result
admission(struct http *h, struct MHD_Connection *c, struct request *rq)
{
    atomic_int *judging = judging_of(h, c);
    if (judging != NULL)
        atomic_fetch_add(judging, 1);
    enum MHD_Result ret = admission_judged(h, c, rq);
    if (judging != NULL)
        atomic_fetch_sub(judging, 1);
    return ret;
}

static enum MHD_Result
admission_judged(struct http *h, struct MHD_Connection *c, struct request *rq)
{
    enum admit_webhook w = rq->route == R_MUTATE ? ADMIT_MUTATE : ADMIT_VALIDATE;
    struct policy *p = holder_get(h->deps.policies);
    struct exceptions *x = h->deps.exceptions ? holder_get(h->deps.exceptions) : NULL;
    struct admit_result res;
    // Exceptions expire against the clock of each request, never against a reload. Not
    // time(NULL): glibc reads it from the coarse clock, up to a tick behind the second.
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (rq->unheld && rq->kept < rq->len)
        unheld_admit(h, p, x, (long long)now.tv_sec, w, rq, &res);
    else
        admit_handle_with(p, x, (long long)now.tv_sec, w, rq->body ? rq->body : "", rq->len,
                          h->deps.audit != NULL, &res);
    if (rq->unheld) {
        metrics_not_held(h->deps.metrics, w, res.decision);
        char n[24];
        snprintf(n, sizeof n, "%zu", rq->len);
        log_msg(LOGL_WARN, "no room under --body-memory in time: the body was read through",
                "bytes", n, "decision", admit_decision_name(res.decision), NULL);
    }
    count_exceptions(h->deps.metrics, &res.ev);
    if (res.status == 400)
        metrics_rejected(h->deps.metrics, METRICS_REJECT_BAD_REQUEST);
    if (res.unguarded)
        metrics_unguarded(h->deps.metrics, w);
    if (res.record.buf != NULL && h->deps.audit != NULL) {
        // The answer leaves only once its record is written: held until then ("always"), or
        // written here.
        if (audit_groups(h->deps.audit) && hold(h, c, rq, w, &res, p, x))
            return MHD_YES;
        char err[256];
        if (audit_append_text(h->deps.audit, res.record.buf, res.record.len, NULL, err,
                              sizeof err) != 0)
            audit_failed(h, &res, res.req.uid, err);
    }
    return answer(h, c, rq, w, &res, p, x);
}

// Holds the answer, its connection suspended, and hands its record to the audit log's writer,
// which writes it with those of the other requests held meanwhile (one fdatasync for them all)
// and then resumes the connection (resume_held). Takes res, p and x. False, with nothing taken,
// once the server is stopping: libmicrohttpd must not be stopped with suspended connections.
static bool
hold(struct http *h, struct MHD_Connection *c, struct request *rq, enum admit_webhook w,
     struct admit_result *res, struct policy *p, struct exceptions *x)
{
    atomic_fetch_add(&h->holding, 1);
    if (atomic_load(&h->no_holding)) {
        atomic_fetch_sub(&h->holding, 1);
        return false;
    }
    // Only the answer and the record are kept: the review's tree goes back now.
    struct held *hd = xmalloc(sizeof *hd);
    *hd = (struct held){.c = c,
                        .w = w,
                        .uid = xstrdup(res->req.uid ? res->req.uid : ""),
                        .h = h,
                        .worker = worker_of(h, c)};
    eval_result_free(&res->ev);
    memset(&res->ev, 0, sizeof res->ev);
    review_request_free(&res->req);
    hd->res = *res;
    exceptions_unref(x);
    policy_unref(p);
    hd->pend = (struct audit_pending){
        .record = hd->res.record.buf, .len = hd->res.record.len, .done = resume_held};
    rq->held = hd;
    // Suspended before the writer can resume it.
    MHD_suspend_connection(c);
    audit_submit(h->deps.audit, &hd->pend);
    return true;
}

// Sends a judged request's answer, its record written (or none needed).
static enum MHD_Result
answer(struct http *h, struct MHD_Connection *c, struct request *rq, enum admit_webhook w,
       struct admit_result *res, struct policy *p, struct exceptions *x)
{
    metrics_observe(h->deps.metrics, w, res->operation, res->decision, mono_since(&rq->start));
    enum MHD_Result ret = send_body(h, c, (unsigned)res->status, "application/json", res->body,
                                    res->body_len, MHD_RESPMEM_MUST_FREE);
    res->body = NULL; // libmicrohttpd frees it
    admit_result_free(res);
    exceptions_unref(x);
    policy_unref(p); // last: the result's patch points into the policy
    return ret;
}

// The record could not be written: unless --audit-failure open, the answer is a 500 saying so.
static void
audit_failed(struct http *h, struct admit_result *res, const char *uid, const char *err)
{
    log_msg(LOGL_ERROR, "audit log write failed", "error", err, "uid", uid, NULL);
    if (!h->opts.audit_fail_open) {
        metrics_rejected(h->deps.metrics, METRICS_REJECT_AUDIT);
        admit_fail(res, 500, "the audit log cannot be written; refusing to answer");
        res->decision = ADMIT_ERROR;
    }
}

// The writer's thread: the record is written, or failed. Resuming a connection wakes its
// worker, which on one core then ran before the writer resumed the next, a pair of thread
// switches per request: so the writer resumes one connection of each worker (its waker), and
// the waker's handler resumes the others of that worker, written meanwhile.
static void
resume_held(struct audit_pending *pend)
{
    struct held *hd = (struct held *)pend; // its first member
    struct woken *q = &hd->h->woken[hd->worker];
    hd->next = NULL;
    pthread_mutex_lock(&hd->h->held_lock);
    bool waker = q->waker == NULL;
    if (waker)
        q->waker = hd;
    else if (q->tail != NULL)
        q->tail = q->tail->next = hd;
    else
        q->head = q->tail = hd;
    pthread_mutex_unlock(&hd->h->held_lock);
    if (waker)
        MHD_resume_connection(hd->c);
}

// The waker's handler (or its connection's end): resumes the held answers written since.
static void
resume_woken(struct http *h, struct held *hd)
{
    struct woken *q = &h->woken[hd->worker];
    pthread_mutex_lock(&h->held_lock);
    if (q->waker != hd) {
        pthread_mutex_unlock(&h->held_lock);
        return;
    }
    struct held *list = q->head;
    q->waker = q->head = q->tail = NULL;
    pthread_mutex_unlock(&h->held_lock);
    for (struct held *next; list != NULL; list = next) {
        next = list->next;
        MHD_resume_connection(list->c);
    }
}

// The handler's call after the resume: the held answer leaves, or the failure's 500.
static enum MHD_Result
answer_held(struct http *h, struct MHD_Connection *c, struct request *rq)
{
    struct held *hd = rq->held;
    rq->held = NULL;
    resume_woken(h, hd);
    if (hd->pend.rc != 0)
        audit_failed(h, &hd->res, hd->uid, hd->pend.err);
    enum MHD_Result ret = answer(h, c, rq, hd->w, &hd->res, NULL, NULL);
    free(hd->uid);
    free(hd);
    atomic_fetch_sub(&h->holding, 1);
    return ret;
}

// The HTTPS listener's endpoints. Probes answer GET only; admission takes POST (checked once
// the body is read, so the connection stays usable).
static const struct {
    const char *url;
    enum route route;
    bool get_only;
} ROUTES[] = {
    {"/mutate", R_MUTATE, false},
    {"/validate", R_VALIDATE, false},
    {"/healthz", R_HEALTH, true},
    {"/readyz", R_HEALTH, true},
};

static enum route
route_of(const char *url, const char *method)
{
    bool get = strcmp(method, "GET") == 0;
    for (size_t i = 0; i < sizeof ROUTES / sizeof *ROUTES; i++)
        if (strcmp(url, ROUTES[i].url) == 0 && (get || !ROUTES[i].get_only))
            return ROUTES[i].route;
    return R_OTHER;
}

// When a request waiting for room under --body-memory stops waiting and is read through
// instead: after half the time its caller gives it (the API server's ?timeout=, its webhook's
// timeoutSeconds; else --request-timeout) from its request line, so the other half is left to
// read the body and answer before the caller gives up. False: no end (no timeout at all).
static bool
wait_end(const struct http *h, struct MHD_Connection *c, const struct request *rq,
         struct timespec *until)
{
    unsigned s = unheld_timeout(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "timeout"));
    if (s == 0)
        s = h->opts.request_timeout;
    if (s == 0)
        return false;
    *until = mono_at(mono_seconds(&rq->start) + s / 2.0);
    return true;
}

// The first call for a request, with its headers: route, client certificate, body cap, and a
// place in the body budget for an admission request. Returns MHD_YES to go on reading.
static enum MHD_Result
request_begin(struct http *h, struct MHD_Connection *c, const char *url, const char *method,
              struct request *rq)
{
    rq->route = route_of(url, method);
    rq->post = strcmp(method, "POST") == 0;
    // kubelet's HTTPS probes present no client certificate: the probes answer without one,
    // everything else needs one when a client CA is configured.
    if (rq->route != R_HEALTH && tls_verify_client(h->deps.tls, c) != 0) {
        metrics_rejected(h->deps.metrics, METRICS_REJECT_CLIENT_CERT);
        return send_error(h, c, 403, "a valid client certificate is required");
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl != NULL && strtoull(cl, NULL, 10) > h->opts.max_body) {
        metrics_rejected(h->deps.metrics, METRICS_REJECT_BODY_TOO_LARGE);
        return send_error(h, c, 413, "request body larger than the limit");
    }
    rq->announced = cl != NULL ? (size_t)strtoull(cl, NULL, 10) : 0;
    rq->has_length = cl != NULL;
    if (rq->post && (rq->route == R_MUTATE || rq->route == R_VALIDATE)) {
        rq->counted = true;
        atomic_fetch_add(&h->in_flight, 1);
        metrics_in_flight(h->deps.metrics, 1);
        size_t want = rq->has_length ? rq->announced : h->opts.max_body;
        struct timespec until;
        bool bounded = wait_end(h, c, rq, &until);
        if (budget_reserve(h->budget, c, &rq->ticket, want, rq->has_length,
                           bounded ? &until : NULL) == BUDGET_NO_ROOM) {
            metrics_rejected(h->deps.metrics, METRICS_REJECT_BODY_MEMORY);
            return send_error(h, c, 503,
                              "no room for another chunked body under --body-memory; retry");
        }
    }
    // Everything else is answered once the request is read, so the connection stays open.
    return MHD_YES;
}

// Bodies of BODY_MAPPED bytes or more get pages of their own: only the pages written count in
// RSS, and a body goes back to the system as soon as it is freed. From the heap, the 1.2 MB
// bodies of 32 connections were kept by the process after their requests, and fragmented it.
#define BODY_MAPPED (128 * 1024)

// Grows a body from old_cap to cap bytes (len of them written), keeping what was written.
static char *
body_grow(char *p, size_t old_cap, size_t cap, size_t len)
{
    if (cap < BODY_MAPPED)
        return xrealloc(p, cap);
    void *q = p != NULL && old_cap >= BODY_MAPPED
                  ? mremap(p, old_cap, cap, MREMAP_MAYMOVE)
                  : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) {
        fprintf(stderr, "tableguard: out of memory allocating %zu bytes\n", cap);
        abort();
    }
    if (p != NULL && old_cap < BODY_MAPPED) {
        memcpy(q, p, len);
        free(p);
    }
    return q;
}

// Frees a body of cap bytes from body_grow (or from xmalloc, with a cap under BODY_MAPPED).
static void
body_free(char *p, size_t cap)
{
    if (p != NULL && cap >= BODY_MAPPED)
        munmap(p, cap);
    else
        free(p);
}

// A piece of the body. A body over the cap (chunked, so unannounced) is read to its end and
// dropped, then answered 413; only admission requests keep theirs.
static void
request_body(struct http *h, struct request *rq, const char *data, size_t n)
{
    if (rq->unheld) {
        // Read through: only the first bytes are kept, for the uid and what the answer needs.
        size_t k = rq->kept < UNHELD_PREFIX ? UNHELD_PREFIX - rq->kept : 0;
        k = k < n ? k : n;
        if (k > 0) {
            if (rq->body == NULL)
                rq->body = xmalloc(UNHELD_PREFIX);
            memcpy(rq->body + rq->kept, data, k);
            rq->kept += k;
        }
        rq->len += n;
        return;
    }
    if (!rq->too_large && rq->len + n > h->opts.max_body) {
        rq->too_large = true;
        body_free(rq->body, rq->cap);
        rq->body = NULL;
        rq->len = rq->cap = 0;
    }
    if (!rq->too_large && rq->counted) {
        if (rq->len + n > rq->cap) {
            // The API server always sends Content-Length: one buffer of exactly that size,
            // not copied as it grows. A 1.2 MB review was held in 2 MB: at 32 connections
            // the peak RSS fell from 71 to 54 MiB. Pages not yet written cost no memory.
            size_t cap = rq->cap ? rq->cap * 2 : rq->announced > 0 ? rq->announced : 16384;
            while (cap < rq->len + n)
                cap *= 2;
            if (cap > h->opts.max_body)
                cap = h->opts.max_body;
            rq->body = body_grow(rq->body, rq->cap, cap, rq->len);
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, data, n);
    }
    if (!rq->too_large)
        rq->len += n;
}

// The request is read: answer it.
static enum MHD_Result
request_answer(struct http *h, struct MHD_Connection *c, const char *url, struct request *rq)
{
    if (rq->too_large) {
        metrics_rejected(h->deps.metrics, METRICS_REJECT_BODY_TOO_LARGE);
        return send_error(h, c, 413, "request body larger than the limit");
    }
    switch (rq->route) {
    case R_HEALTH:
        return health(h, c, url);
    case R_OTHER:
        metrics_rejected(h->deps.metrics, METRICS_REJECT_NOT_FOUND);
        return send_error(h, c, 404,
                          "not found: the endpoints are POST /mutate and POST /validate");
    default:
        if (!rq->post) {
            metrics_rejected(h->deps.metrics, METRICS_REJECT_METHOD);
            return send_error(h, c, 405, "method not allowed: use POST");
        }
        enum MHD_Result ret = admission(h, c, rq);
        // The answer is queued: the body and its share of the budget go back now, not when the
        // client has read the answer (one that never reads it would hold them until its idle
        // timeout), and the connection's own idle timeout applies again.
        rq->answered = true;
        body_free(rq->body, rq->cap);
        rq->body = NULL;
        rq->len = rq->cap = 0;
        budget_release(h->budget, &rq->ticket);
        return ret;
    }
}

// Called with the request target before libmicrohttpd splits it at '?' and unescapes it (which
// hides a NUL inside it); what it returns becomes the request's state.
static void *
on_uri(void *cls, const char *uri_, struct MHD_Connection *c)
{
    struct http *h = cls;
    char *uri = (char *)uri_;    // see below: written only past the limits
    wire_start(conn_wire(c), c); // the handshake is done: from here GnuTLS reads through the wire
    struct request *rq = xcalloc(1, sizeof *rq);
    // The request's time starts with its request line: the deadline covers headers and body.
    clock_gettime(CLOCK_MONOTONIC, &rq->start);
    rq->deadline_from = rq->start;
    rq->conn = conn_reap(c);
    reaper_request_line(rq->conn);
    if (h != NULL && h->opts.request_timeout > 0 &&
        h->opts.request_timeout < h->opts.connection_timeout) {
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, h->opts.request_timeout);
        rq->timeout_set = h->opts.request_timeout;
    }
    rq->raw_uri_len = strlen(uri);
    for (const char *p = uri; *p; p++)
        rq->raw_uri_args += *p == '&' || *p == '?';
    if (rq->raw_uri_args > HTTP_MAX_ARGS) {
        // libmicrohttpd parses the query next, a record per argument from the connection's
        // memory: 600 arguments exhaust it and the connection then hangs without an answer.
        // The target lies in its read buffer, which it cuts up in place itself; joining the
        // arguments into one leaves a single record, and the handler refuses the request (the
        // counts recorded above stand).
        for (char *p = strchr(uri, '?'); p != NULL && *p; p++)
            if (*p == '&')
                *p = '_';
    }
    return rq;
}

struct framing {
    size_t lengths, encodings;
    const char *end; // where the previous header's value ended, in the read buffer
    const char *length;
    size_t length_size;
    bool differ, not_number, bad_byte, chunked;
};

static enum MHD_Result
scan_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
            size_t value_size)
{
    (void)kind;
    struct framing *f = cls;
    // libmicrohttpd keeps the headers in its read buffer, in order, and cuts a value at a NUL:
    // only line ends and blanks may lie between one value and the next key, or a NUL hid the
    // rest of a line. (Bounded by the connection's memory, where the buffer lives.)
    if (f->end != NULL && key > f->end && key - f->end < 64 * 1024) {
        for (const char *p = f->end; p < key; p++)
            if (*p != '\0' && *p != '\r' && *p != '\n' && *p != ' ' && *p != '\t')
                f->bad_byte = true;
    }
    f->end = value != NULL ? value + value_size : key + key_size;
    if (memchr(key, '\0', key_size) || memchr(key, '\r', key_size) ||
        (value != NULL && (memchr(value, '\0', value_size) || memchr(value, '\r', value_size))))
        f->bad_byte = true;
    if (value == NULL)
        return MHD_YES;
    if (key_size == 14 && strncasecmp(key, "Content-Length", 14) == 0) {
        if (f->lengths++ > 0 &&
            (value_size != f->length_size || memcmp(value, f->length, value_size) != 0))
            f->differ = true;
        f->length = value;
        f->length_size = value_size;
        f->not_number |= value_size == 0 || strspn(value, "0123456789") != value_size;
    } else if (key_size == 17 && strncasecmp(key, "Transfer-Encoding", 17) == 0) {
        f->encodings++;
        f->chunked = value_size == 7 && strncasecmp(value, "chunked", 7) == 0;
    }
    return MHD_YES;
}

// Why the request's framing or target is ambiguous (RFC 9112 section 6.3: such a message is
// refused, and the connection closed, since its body's end cannot be trusted), or NULL.
static const char *
framing_error(struct MHD_Connection *c, const char *url, const char *version,
              const struct request *rq)
{
    struct framing f = {.end = version + strlen(version)};
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, scan_header, &f);
    if (f.bad_byte)
        return "a header holds a NUL byte or a bare CR";
    if (rq->raw_uri_args > HTTP_MAX_ARGS)
        return "the query string has too many arguments";
    // The target runs from url to the space before the version; a NUL inside it shortened it.
    if (version > url && (size_t)(version - url) != rq->raw_uri_len + 1)
        return "the request target holds a NUL byte";
    if (f.encodings > 0 && f.lengths > 0)
        return "both Content-Length and Transfer-Encoding: the body's end is ambiguous";
    if (f.encodings > 1 || (f.encodings == 1 && !f.chunked))
        return "unsupported Transfer-Encoding (only chunked is accepted)";
    if (f.differ)
        return "two different Content-Length values";
    if (f.not_number)
        return "Content-Length is not a number";
    return NULL;
}

// An answer after which the connection closes: what follows the headers cannot be trusted.
static enum MHD_Result
refuse_and_close(struct http *h, struct MHD_Connection *c, const char *why)
{
    metrics_rejected(h->deps.metrics, METRICS_REJECT_BAD_REQUEST);
    log_msg(LOGL_DEBUG, "request refused before its body", "reason", why, NULL);
    size_t len;
    char *body = review_error_body(why, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, 400, r);
    MHD_destroy_response(r);
    return ret;
}

// The idle timeout alone let a client hold a request (and its share of the body budget) for
// ever by sending a byte at a time. From its headers on, a request has --request-timeout
// seconds in all: its connection's idle timeout is cut to what is left after every piece, so a
// stalled client is closed at the deadline, and a trickling one at its next piece.
static double
time_left(const struct http *h, const struct request *rq)
{
    return (double)h->opts.request_timeout - mono_since(&rq->deadline_from);
}

// The same timeout again is not set: libmicrohttpd would only take the connection out of its
// timeout list and put it back (under a lock), and its own reads already refresh the idle time.
// Only with a --request-timeout (its callers check).
static void
keep_deadline(struct http *h, struct MHD_Connection *c, struct request *rq, double left)
{
    // Never longer than the idle timeout, which still closes a client that stops.
    unsigned s = left < 1 ? 1 : (unsigned)left + 1;
    if (h->opts.connection_timeout > 0 && s > h->opts.connection_timeout)
        s = h->opts.connection_timeout;
    if (s == rq->timeout_set)
        return;
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, s);
    rq->timeout_set = s;
}

static bool
past_deadline(struct http *h, struct MHD_Connection *c, struct request *rq)
{
    if (h->opts.request_timeout == 0 || rq->answered)
        return false;
    double left = time_left(h, rq);
    if (left <= 0) {
        metrics_rejected(h->deps.metrics, METRICS_REJECT_TIMEOUT);
        log_msg(LOGL_WARN, "request not complete within --request-timeout; connection closed",
                NULL);
        return true;
    }
    keep_deadline(h, c, rq, left);
    return false;
}

// libmicrohttpd calls this once with the headers, once per piece of the body, and once more
// when the body is complete.
static enum MHD_Result
on_https(void *cls, struct MHD_Connection *c, const char *url, const char *method,
         const char *version, const char *data, size_t *data_size, void **con_cls)
{
    struct http *h = cls;
    struct request *rq = *con_cls;
    if (rq == NULL) { // not through on_uri: cannot happen, but never dereference NULL
        rq = on_uri(NULL, url, c);
        rq->raw_uri_len = version > url ? (size_t)(version - url) - 1 : strlen(url);
        *con_cls = rq;
    }
    if (rq->held != NULL)
        return answer_held(h, c, rq); // resumed: its record is written
    if (!rq->begun) {
        rq->begun = true;
        wire_request(conn_wire(c), strcmp(method, MHD_HTTP_METHOD_HEAD) == 0);
        reaper_headers_done(rq->conn);
        const char *bad = framing_error(c, url, version, rq);
        if (bad != NULL)
            return refuse_and_close(h, c, bad);
        enum MHD_Result ret = request_begin(h, c, url, method, rq);
        if (h->opts.request_timeout > 0)
            keep_deadline(h, c, rq, time_left(h, rq));
        return ret;
    }
    if (!rq->reading) {
        // The first call after the headers: the body may be read now, after a wait for room
        // under --body-memory or at once. Time spent waiting does not count against the
        // deadline (a slow client ahead is the one to close), so the clock restarts; the wait
        // has its own end (wait_end).
        rq->reading = true;
        clock_gettime(CLOCK_MONOTONIC, &rq->deadline_from);
        // Its wait ended without room: the body is read through, and the request answered
        // from its first bytes (a denial saying why for guarded objects), not failed.
        rq->unheld = rq->counted && budget_expired(h->budget, &rq->ticket);
    }
    if (past_deadline(h, c, rq))
        return MHD_NO; // closes the connection, and its budget goes back
    if (*data_size > 0) {
        request_body(h, rq, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    // After a resume the handler is called once with no data, before the body is read; the
    // request is complete only when its Content-Length has arrived.
    if (rq->has_length && !rq->too_large && rq->len < rq->announced)
        return MHD_YES;
    enum MHD_Result ret = request_answer(h, c, url, rq);
    // Answered: between requests the connection's own idle timeout applies again.
    rq->answered = true;
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, h->opts.connection_timeout);
    return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct http *h = cls;
    struct request *rq = *con_cls;
    reaper_request_done(rq ? rq->conn : conn_reap(c));
    if (rq == NULL)
        return;
    if (rq->held != NULL) {
        // Closed after its resume, before its answer could be queued.
        struct held *hd = rq->held;
        resume_woken(h, hd);
        admit_result_free(&hd->res);
        free(hd->uid);
        free(hd);
        rq->held = NULL;
        atomic_fetch_sub(&h->holding, 1);
    }
    if (rq->counted) {
        atomic_fetch_sub(&h->in_flight, 1);
        metrics_in_flight(h->deps.metrics, -1);
    }
    body_free(rq->body, rq->cap);
    rq->body = NULL;
    if (rq->counted) // its budget fields are read and written under the budget's lock
        budget_release(h->budget, &rq->ticket);
    free(rq);
    *con_cls = NULL;
}

static enum MHD_Result
on_plain(void *cls, struct MHD_Connection *c, const char *url, const char *method,
         const char *version, const char *data, size_t *data_size, void **con_cls)
{
    (void)version;
    (void)data;
    (void)data_size;
    (void)con_cls;
    struct http *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(h, c, 405, "method not allowed: use GET");
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0)
        return health(h, c, url);
    if (strcmp(url, "/metrics") != 0)
        return send_error(h, c, 404, "not found: the endpoints are /metrics, /healthz, /readyz");
    struct metrics_gauges g = {0};
    if (h->deps.audit != NULL)
        audit_stats(h->deps.audit, &g.audit_records, &g.audit_errors);
    g.cert_not_after = tls_not_after(h->deps.tls);
    budget_gauges(h->budget, &g.body_bytes, &g.waiting);
    g.body_memory = h->opts.body_memory;
    tls_reload_counts(h->deps.tls, &g.tls_reload_ok, &g.tls_reload_failed);
    struct policy *p = holder_get(h->deps.policies);
    g.policy_rules = p ? policy_spec(p)->rule_count : 0;
    policy_unref(p);
    size_t len = 0;
    char *text = metrics_render(h->deps.metrics, &g, &len);
    if (text == NULL)
        return MHD_NO;
    return send_body(h, c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len,
                     MHD_RESPMEM_MUST_FREE);
}

static int
parse_listen(const char *spec, struct sockaddr_storage *ss, bool *v6, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon[1] == '\0') {
        snprintf(err, errlen, "listen address \"%s\" is not host:port", spec);
        return -1;
    }
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host) {
        snprintf(err, errlen, "listen address \"%s\" is too long", spec);
        return -1;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "listen address \"%s\": %s", spec, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    return 0;
}

static void conn_gone(struct http *h);

// Gives each HTTPS connection its wire and its record for the header deadline (whose clock
// starts at accept), and counts it out when it closes (it was counted in at accept: hand_over).
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
    struct http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        size_t s = fd != NULL ? (size_t)fd->connect_fd : SIZE_MAX;
        struct conn *k = xmalloc(sizeof *k);
        k->wire = wire_new(c);
        k->reap = reaper_opened(h->reaper, c, s < h->accepted_cap ? &h->accepted_at[s] : NULL);
        *socket_context = k;
        return;
    }
    if (*socket_context != NULL) {
        struct conn *k = *socket_context;
        reaper_closed(h->reaper, k->reap);
        wire_free(k->wire); // after libmicrohttpd released the TLS session
        free(k);
        *socket_context = NULL;
    }
    conn_gone(h);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_msg(LOGL_DEBUG, "libmicrohttpd", "detail", msg, NULL);
}

// Pending connections the kernel queues for the HTTPS listener.
#define LISTEN_BACKLOG 1024

// Opens the HTTPS listener as libmicrohttpd would (SO_REUSEADDR, IPv6 only on an IPv6 address),
// non-blocking, and notes its port (for a port of 0).
static int
listen_on(struct http *h, const struct sockaddr_storage *ss, bool v6, char *err, size_t errlen)
{
    int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "cannot serve HTTPS on %s (address in use?): %s", h->opts.listen,
                 strerror(errno));
        if (fd != -1)
            close(fd);
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        h->listen_port =
            ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
    h->listen_fd = fd;
    // Descriptors are numbered from the lowest free one, so the connections at the limit, a
    // backlog adopted by the drain and the process's other files fit; one past the table (many
    // other files) has its deadline start when a worker starts it.
    h->accepted_cap = (size_t)h->opts.connection_limit + LISTEN_BACKLOG + 256;
    h->accepted_at = xcalloc(h->accepted_cap, sizeof *h->accepted_at);
    return 0;
}

static void
wake_acceptor(struct http *h)
{
    char b = 0;
    // A full pipe already holds a wake-up.
    while (write(h->wake[1], &b, 1) == -1 && errno == EINTR)
        ;
}

// A connection counted at accept is gone: a slot is free. At the limit the acceptor sleeps on
// its pipe (closing connections do not otherwise reach it), so it is woken.
static void
conn_gone(struct http *h)
{
    if (atomic_fetch_sub(&h->connections, 1) >= (int)h->opts.connection_limit)
        wake_acceptor(h);
}

// libmicrohttpd's own listener sat in every worker's epoll set, so an idle worker took a new
// connection while another was judging a review. Handed over, a socket goes to the worker of its
// number (judging_of) whether it is busy or not, and its handshake and request would wait for
// that judgement (a second or more for a large review) while another worker idles. So a socket
// for a worker that is judging is given another number, one of an idle worker, if there is one.
static int
steer(struct http *h, int s)
{
    unsigned n = h->workers;
    if (n < 2 || atomic_load(&h->judging[(unsigned)s % n]) == 0)
        return s;
    // Numbers are taken from the lowest free one above the last tried; those in use are
    // skipped, so a few tries find the number of an idle worker if there is one.
    int from = s + 1;
    for (unsigned tries = 0; tries < 4 * n; tries++) {
        int d = fcntl(s, F_DUPFD_CLOEXEC, from);
        if (d == -1)
            return s; // out of descriptors: the busy worker serves it later
        if (atomic_load(&h->judging[(unsigned)d % n]) == 0) {
            close(s);
            return d;
        }
        close(d);
        from = d + 1;
    }
    return s;
}

// Hands an accepted socket to libmicrohttpd. It is counted from here, not from libmicrohttpd's
// STARTED notice, which its worker sends later: the acceptor must see a burst's connections
// before they start, or the burst overshoots the limit. Returns whether libmicrohttpd took it.
static bool
hand_over(struct http *h, int s, const struct sockaddr_storage *ss, socklen_t len)
{
    s = steer(h, s);
    if ((size_t)s < h->accepted_cap)
        clock_gettime(CLOCK_MONOTONIC, &h->accepted_at[s]);
    atomic_fetch_add(&h->connections, 1);
    // libmicrohttpd closes the socket itself if it cannot take it (out of memory, or a TLS
    // session it cannot create): then no notice comes for it.
    if (MHD_add_connection(h->https, s, (const struct sockaddr *)ss, len) == MHD_YES)
        return true;
    log_msg(LOGL_WARN, "a connection could not be started; closed", "error", strerror(errno), NULL);
    conn_gone(h);
    return false;
}

static void
nap_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&t, NULL);
}

// The next connection waiting on the listener; -1 with errno when there is none (EAGAIN) or it
// cannot be taken now. A connection the client already gave up (ECONNABORTED) or an interrupted
// call is passed over: the next one may be there.
static int
accept_next(struct http *h, struct sockaddr_storage *ss, socklen_t *len)
{
    for (;;) {
        *len = sizeof *ss;
        int s = accept4(h->listen_fd, (struct sockaddr *)ss, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s != -1 || (errno != EINTR && errno != ECONNABORTED))
            return s;
    }
}

// Accepts what waits in the backlog, while under the limit. *starved: the last accept failed
// for want of descriptors or memory (warned once, until an accept succeeds again).
static void
accept_waiting(struct http *h, bool *starved)
{
    for (int i = 0; i < 64 && !atomic_load(&h->stop_accepting) &&
                    atomic_load(&h->connections) < (int)h->opts.connection_limit;
         i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        int s = accept_next(h, &ss, &len);
        if (s == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            // EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays in the backlog, and the
            // listener stays readable; look again in a while rather than spin.
            if (!*starved)
                log_msg(LOGL_WARN,
                        "cannot accept connections; they wait in the listen backlog meanwhile",
                        "error", strerror(errno), NULL);
            *starved = true;
            nap_ms(100);
            return;
        }
        if (*starved)
            log_msg(LOGL_INFO, "accepting connections again", NULL);
        *starved = false;
        hand_over(h, s, &ss, len);
    }
}

// The server accepts its HTTPS connections itself and hands each to libmicrohttpd
// (MHD_add_connection), instead of letting libmicrohttpd own the listener: stopping
// libmicrohttpd's own accepting takes MHD_quiesce_daemon, which in 0.9.75's epoll mode races the
// worker threads for the listener's place in their epoll sets and aborts the process when it
// loses ("Failed to remove listen FD from epoll set"): a SIGTERM under load could drop every
// request in flight. Nothing in libmicrohttpd touches the listener now.
//
// At --connection-limit (counted from accept to close) this thread stops polling the listener,
// so a new connection waits in the backlog until a connection closes and wakes it.
static void *
acceptor_main(void *arg)
{
    struct http *h = arg;
    bool starved = false;
    while (!atomic_load(&h->stop_accepting)) {
        bool full = atomic_load(&h->connections) >= (int)h->opts.connection_limit;
        struct pollfd p[2] = {{.fd = h->wake[0], .events = POLLIN},
                              {.fd = h->listen_fd, .events = POLLIN}};
        if (poll(p, full ? 1 : 2, -1) < 0) {
            if (errno != EINTR)
                nap_ms(100); // ENOMEM: try again
            continue;
        }
        if (p[0].revents != 0) {
            char b[64];
            while (read(h->wake[0], b, sizeof b) > 0)
                ;
        }
        if (p[1].revents != 0)
            accept_waiting(h, &starved);
    }
    return NULL;
}

static int
acceptor_start(struct http *h, char *err, size_t errlen)
{
    if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        h->wake[0] = h->wake[1] = -1;
        snprintf(err, errlen, "cannot create the acceptor's pipe: %s", strerror(errno));
        return -1;
    }
    int rc = pthread_create(&h->acceptor, NULL, acceptor_main, h);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the acceptor thread: %s", strerror(rc));
        return -1;
    }
    h->has_acceptor = true;
    return 0;
}

// Stops the acceptor: once this returns nothing accepts from the listener but the drain.
static void
acceptor_stop(struct http *h)
{
    if (!h->has_acceptor)
        return;
    atomic_store(&h->stop_accepting, true);
    wake_acceptor(h);
    pthread_join(h->acceptor, NULL);
    h->has_acceptor = false;
}

struct http *
http_start(const struct http_options *o, const struct http_deps *d, char *err, size_t errlen)
{
    struct http *h = xcalloc(1, sizeof *h);
    h->opts = *o;
    h->deps = *d;
    h->listen_fd = h->wake[0] = h->wake[1] = -1;
    pthread_mutex_init(&h->detail_lock, NULL);
    pthread_mutex_init(&h->held_lock, NULL);
    h->budget = budget_new(o->body_memory);
    if (o->request_timeout > 0) {
        h->reaper = reaper_new(o->request_timeout, d->metrics, conn_reap);
        if (reaper_start(h->reaper, err, errlen) != 0)
            goto fail;
    }
    if (o->body_memory < o->max_body) {
        snprintf(err, errlen,
                 "--body-memory (%zu) is below --max-body (%zu): a request at the "
                 "cap could never be read",
                 o->body_memory, o->max_body);
        goto fail;
    }
    struct sockaddr_storage ss;
    bool v6;
    if (parse_listen(o->listen, &ss, &v6, err, errlen) != 0 ||
        listen_on(h, &ss, v6, err, errlen) != 0)
        goto fail;

    struct MHD_OptionItem opts[24];
    size_t n = tls_mhd_options(d->tls, opts);
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, o->threads, NULL};
    // The acceptor keeps to --connection-limit. libmicrohttpd's own limit, shared out among its
    // threads, must never refuse what it is handed (it would close the socket unannounced, a
    // slot lost): each thread may hold the limit and a whole backlog adopted by the drain.
    unsigned workers = o->threads > 1 ? o->threads : 1;
    h->workers = workers;
    h->judging = xcalloc(workers, sizeof *h->judging);
    h->woken = xcalloc(workers, sizeof *h->woken);
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                        (o->connection_limit + LISTEN_BACKLOG + 1) * workers, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, o->connection_timeout, NULL};
    // libmicrohttpd zeroes a connection's pool after every request (all of it, and half of it
    // again when the read buffer shrinks), so its size is paid per request: 32 KiB was 50 k of
    // the 277 k instructions of a 1-component review, 16 KiB is 25 k. The request line and
    // headers must fit in it: 16 KiB serves an 8 KiB header beside 64 more lines (10 KiB in
    // all; the API server sends under 1 KiB); bodies stream through it into our own buffer.
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, 16 * 1024, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, h};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TLS | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET;
    h->https =
        MHD_start_daemon(flags, 0, NULL, NULL, on_https, h, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (h->https == NULL) {
        snprintf(err, errlen, "cannot serve HTTPS on %s (TLS setup failed)", o->listen);
        goto fail;
    }
    if (acceptor_start(h, err, errlen) != 0)
        goto fail;
    if (o->metrics_listen != NULL) {
        if (parse_listen(o->metrics_listen, &ss, &v6, err, errlen) != 0)
            goto fail;
        h->plain = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | (v6 ? MHD_USE_IPv6 : 0),
            0, NULL, NULL, on_plain, h, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
        if (h->plain == NULL) {
            snprintf(err, errlen, "cannot serve metrics on %s (address in use?)",
                     o->metrics_listen);
            goto fail;
        }
    }
    return h;
fail:
    http_stop(h);
    return NULL;
}

// Replaces one of the texts /readyz shows with a copy of `text` (NULL: none).
static void
set_readiness_text(struct http *h, char **slot, const char *text)
{
    pthread_mutex_lock(&h->detail_lock);
    free(*slot);
    *slot = text ? xstrdup(text) : NULL;
    pthread_mutex_unlock(&h->detail_lock);
}

void
http_set_detail(struct http *h, const char *detail)
{
    set_readiness_text(h, &h->detail, detail);
}

void
http_set_cert_failure(struct http *h, const char *why)
{
    set_readiness_text(h, &h->cert_failure, why);
}

static unsigned
port_of(struct MHD_Daemon *d)
{
    if (d == NULL)
        return 0;
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : 0;
}

unsigned
http_port(struct http *h)
{
    return h->listen_port;
}

unsigned
http_metrics_port(struct http *h)
{
    return port_of(h->plain);
}

// Closing the listener resets the connections the kernel completed that nobody accepted yet,
// though their clients already count them as open: accept them and give them to
// libmicrohttpd, which answers them like the others, past --connection-limit (its own limit
// leaves room for a whole backlog). Returns how many were taken.
static int
adopt_backlog(struct http *h)
{
    int n = 0;
    while (atomic_load(&h->connections) < (int)(h->opts.connection_limit + LISTEN_BACKLOG + 1)) {
        struct sockaddr_storage ss;
        socklen_t len;
        int s = accept_next(h, &ss, &len);
        if (s == -1)
            break; // EAGAIN: none left
        n += hand_over(h, s, &ss, len);
    }
    return n;
}

void
http_drain(struct http *h, unsigned delay_s, unsigned drain_s)
{
    atomic_store(&h->draining, true);
    log_msg(LOGL_INFO, "draining: readiness fails, still serving until endpoints are updated",
            NULL);
    sleep(delay_s);
    acceptor_stop(h);
    int adopted = 0;
    if (h->listen_fd != -1) {
        adopted = adopt_backlog(h);
        close(h->listen_fd);
        h->listen_fd = -1;
    }
    char a[16], open_now[16];
    snprintf(a, sizeof a, "%d", adopted);
    snprintf(open_now, sizeof open_now, "%d", atomic_load(&h->connections));
    log_msg(LOGL_INFO, "no longer accepting connections; answering every connection accepted",
            "connections", open_now, "taken_from_backlog", a, NULL);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    // Every connection the server accepted is answered: while draining each answer says
    // Connection: close, and the connection closes after it. An idle keep-alive connection
    // cannot be told before its next request, and closing it could race that request (the
    // API server does not retry a POST), so it stays open until the client sends on it or
    // closes it, or until the drain timeout.
    while (atomic_load(&h->connections) > 0 && mono_since(&t0) < drain_s) {
        struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    int left = atomic_load(&h->connections), busy = atomic_load(&h->in_flight);
    if (left > 0) {
        char n[16], r[16];
        snprintf(n, sizeof n, "%d", left);
        snprintf(r, sizeof r, "%d", busy);
        log_msg(busy > 0 ? LOGL_WARN : LOGL_INFO,
                busy > 0 ? "drain timeout reached with requests in flight"
                         : "drain timeout reached; closing idle connections",
                "connections", n, "requests", r, NULL);
    }
}

void
http_stop(struct http *h)
{
    if (h == NULL)
        return;
    // libmicrohttpd must not be stopped with suspended connections: let every waiter go, and
    // every held answer leave (its record is written meanwhile; no answer is held from here).
    budget_stop(h->budget);
    atomic_store(&h->no_holding, true);
    while (atomic_load(&h->holding) > 0)
        nap_ms(1);
    reaper_stop(h->reaper); // no shutdown(2) once the daemon closes the sockets
    acceptor_stop(h);       // nothing handed to the daemon once it stops
    if (h->listen_fd != -1)
        close(h->listen_fd);
    if (h->https != NULL)
        MHD_stop_daemon(h->https);
    if (h->plain != NULL)
        MHD_stop_daemon(h->plain);
    for (int i = 0; i < 2; i++) // after the daemon: its closing notices write to it
        if (h->wake[i] != -1)
            close(h->wake[i]);
    free(h->accepted_at);
    free(h->judging);
    free(h->woken);
    free(h->detail);
    free(h->cert_failure);
    pthread_mutex_destroy(&h->detail_lock);
    pthread_mutex_destroy(&h->held_lock);
    budget_free(h->budget);
    reaper_free(h->reaper); // after the daemon: its closing notices reach the reaper
    free(h);
}

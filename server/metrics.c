// SPDX-License-Identifier: Apache-2.0
// Prometheus metrics: atomic counters and a fixed-bucket histogram, rendered by hand in the
// text format (there is no maintained C client library).
#include "server/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/xalloc.h"

static const char *const REJECTS[] = {"body_too_large", "bad_request",        "method_not_allowed",
                                      "not_found",      "client_certificate", "audit_failure",
                                      "body_memory",    "request_timeout"};
// From 100 µs to 10 s, so the webhook's own timeout is inside the range.
static const double BUCKETS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define NB (sizeof BUCKETS / sizeof *BUCKETS)
#define NW ADMIT_WEBHOOK_COUNT
#define NO REVIEW_OPERATION_COUNT
#define ND ADMIT_DECISION_COUNT

struct metrics {
    atomic_uint_fast64_t requests[NW][NO][ND];
    atomic_uint_fast64_t buckets[NW][NB + 1]; // not cumulative; the last is +Inf
    atomic_uint_fast64_t sum_ns[NW];
    atomic_int in_flight;
    atomic_uint_fast64_t rejected[METRICS_REJECT_COUNT];
    atomic_uint_fast64_t unguarded[NW];
    atomic_uint_fast64_t not_held[NW][ND];
    atomic_uint_fast64_t reload_ok, reload_failed;
    atomic_int last_reload_ok;
    atomic_llong last_success;
    double start_time;
    atomic_uint_fast64_t exceptions_reload_ok, exceptions_reload_failed;
    // Uses per exception: names are added under the lock and never removed, so a reader that
    // saw a count of n may read the first n names without it.
    pthread_mutex_t exceptions_lock;
    atomic_size_t exception_count;
    char *exception_names[METRICS_EXCEPTIONS_MAX];
    atomic_uint_fast64_t exception_uses[METRICS_EXCEPTIONS_MAX + 1]; // the last: "_other"
};

struct metrics *
metrics_new(void)
{
    struct metrics *m = xcalloc(1, sizeof *m);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    m->start_time = (double)tv.tv_sec + tv.tv_usec / 1e6;
    atomic_store(&m->last_reload_ok, 1);
    pthread_mutex_init(&m->exceptions_lock, NULL);
    return m;
}

void
metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < atomic_load(&m->exception_count); i++)
        free(m->exception_names[i]);
    pthread_mutex_destroy(&m->exceptions_lock);
    free(m);
}

void
metrics_exceptions_reload(struct metrics *m, int ok)
{
    atomic_fetch_add(ok ? &m->exceptions_reload_ok : &m->exceptions_reload_failed, 1);
}

static size_t
exception_slot(struct metrics *m, const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(m->exception_names[i], name) == 0)
            return i;
    return n;
}

void
metrics_exception_used(struct metrics *m, const char *name)
{
    size_t n = atomic_load(&m->exception_count), i = exception_slot(m, name, n);
    if (i == n) {
        pthread_mutex_lock(&m->exceptions_lock);
        n = atomic_load(&m->exception_count);
        i = exception_slot(m, name, n);
        if (i == n && n < METRICS_EXCEPTIONS_MAX) {
            m->exception_names[n] = xstrdup(name);
            atomic_store(&m->exception_count, n + 1);
        } else if (i == n) {
            i = METRICS_EXCEPTIONS_MAX;
        }
        pthread_mutex_unlock(&m->exceptions_lock);
    }
    atomic_fetch_add_explicit(&m->exception_uses[i], 1, memory_order_relaxed);
}

void
metrics_observe(struct metrics *m, enum admit_webhook webhook, enum review_operation operation,
                enum admit_decision decision, double seconds)
{
    size_t w = webhook < NW ? webhook : NW - 1;
    size_t o = operation < NO ? operation : REVIEW_UNKNOWN;
    size_t d = decision < ND ? decision : ADMIT_ERROR;
    atomic_fetch_add_explicit(&m->requests[w][o][d], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < NB && seconds > BUCKETS[b])
        b++;
    atomic_fetch_add_explicit(&m->buckets[w][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_ns[w], (uint_fast64_t)(seconds * 1e9), memory_order_relaxed);
}

void
metrics_in_flight(struct metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->in_flight, delta, memory_order_relaxed);
}

void
metrics_rejected(struct metrics *m, enum metrics_reject reason)
{
    atomic_fetch_add_explicit(&m->rejected[reason], 1, memory_order_relaxed);
}

void
metrics_unguarded(struct metrics *m, enum admit_webhook webhook)
{
    atomic_fetch_add_explicit(&m->unguarded[webhook < NW ? webhook : NW - 1], 1,
                              memory_order_relaxed);
}

void
metrics_not_held(struct metrics *m, enum admit_webhook webhook, enum admit_decision decision)
{
    atomic_fetch_add_explicit(
        &m->not_held[webhook < NW ? webhook : NW - 1][decision < ND ? decision : ND - 1], 1,
        memory_order_relaxed);
}

void
metrics_policy_loaded(struct metrics *m, time_t when)
{
    atomic_store(&m->last_reload_ok, 1);
    atomic_store(&m->last_success, (long long)when);
}

void
metrics_policy_reload(struct metrics *m, int ok, time_t when)
{
    atomic_fetch_add(ok ? &m->reload_ok : &m->reload_failed, 1);
    atomic_store(&m->last_reload_ok, ok ? 1 : 0);
    if (ok)
        atomic_store(&m->last_success, (long long)when);
}

static void
head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
process_metrics(FILE *f, double start_time)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    head(f, "process_cpu_seconds_total", "counter", "Total user and system CPU time in seconds.");
    fprintf(f, "process_cpu_seconds_total %.6f\n", cpu);
    long page = sysconf(_SC_PAGESIZE);
    unsigned long vsize = 0, rss = 0;
    FILE *st = fopen("/proc/self/statm", "r");
    if (st != NULL) {
        if (fscanf(st, "%lu %lu", &vsize, &rss) != 2)
            vsize = rss = 0;
        fclose(st);
    }
    head(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    fprintf(f, "process_resident_memory_bytes %lu\n", rss * (unsigned long)page);
    head(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    fprintf(f, "process_virtual_memory_bytes %lu\n", vsize * (unsigned long)page);
    size_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        while (readdir(d) != NULL)
            fds++;
        closedir(d);
        fds = fds > 3 ? fds - 3 : 0; // ".", ".." and the directory's own descriptor
    }
    head(f, "process_open_fds", "gauge", "Number of open file descriptors.");
    fprintf(f, "process_open_fds %zu\n", fds);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    head(f, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    fprintf(f, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    head(f, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
    fprintf(f, "process_start_time_seconds %.3f\n", start_time);
}

// ---- The exposition: one row a metric -------------------------------------------------------

// The single-value metrics, read once per scrape; every one is an integer.
struct scalars {
    long long in_flight, body_bytes, body_memory, waiting, policy_rules, last_reload_ok,
        last_success, audit_records, audit_errors, cert_not_after;
};

static void
emit_requests(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g)
{
    (void)g;
    for (int w = 0; w < NW; w++)
        for (int o = 0; o < NO; o++)
            for (int d = 0; d < ND; d++) {
                uint64_t v = atomic_load(&m->requests[w][o][d]);
                // The common series are there from the start, at 0, so rates need no absent().
                if (v > 0 || (o < 2 && d < 3))
                    fprintf(f, "%s{webhook=\"%s\",operation=\"%s\",decision=\"%s\"} %llu\n", name,
                            admit_webhook_name((enum admit_webhook)w),
                            review_operation_name((enum review_operation)o),
                            admit_decision_name((enum admit_decision)d), (unsigned long long)v);
            }
}

static void
emit_duration(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g)
{
    (void)g;
    for (int w = 0; w < NW; w++) {
        const char *wh = admit_webhook_name((enum admit_webhook)w);
        uint64_t cum = 0;
        for (size_t b = 0; b <= NB; b++) {
            cum += atomic_load(&m->buckets[w][b]);
            if (b < NB)
                fprintf(f, "%s_bucket{webhook=\"%s\",le=\"%g\"} %llu\n", name, wh, BUCKETS[b],
                        (unsigned long long)cum);
            else
                fprintf(f, "%s_bucket{webhook=\"%s\",le=\"+Inf\"} %llu\n", name, wh,
                        (unsigned long long)cum);
        }
        fprintf(f, "%s_sum{webhook=\"%s\"} %.9f\n", name, wh, atomic_load(&m->sum_ns[w]) / 1e9);
        fprintf(f, "%s_count{webhook=\"%s\"} %llu\n", name, wh, (unsigned long long)cum);
    }
}

static void
emit_rejected(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g)
{
    (void)g;
    for (int r = 0; r < METRICS_REJECT_COUNT; r++)
        fprintf(f, "%s{reason=\"%s\"} %llu\n", name, REJECTS[r],
                (unsigned long long)atomic_load(&m->rejected[r]));
}

static void
emit_unguarded(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g)
{
    (void)g;
    for (int w = 0; w < NW; w++)
        fprintf(f, "%s{webhook=\"%s\"} %llu\n", name, admit_webhook_name((enum admit_webhook)w),
                (unsigned long long)atomic_load(&m->unguarded[w]));
}

static void
emit_not_held(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g)
{
    (void)g;
    for (int w = 0; w < NW; w++)
        for (int d = 0; d < ND; d++)
            fprintf(f, "%s{webhook=\"%s\",decision=\"%s\"} %llu\n", name,
                    admit_webhook_name((enum admit_webhook)w),
                    admit_decision_name((enum admit_decision)d),
                    (unsigned long long)atomic_load(&m->not_held[w][d]));
}

static void
emit_results(FILE *f, const char *name, unsigned long long ok, unsigned long long failed)
{
    fprintf(f, "%s{result=\"success\"} %llu\n", name, ok);
    fprintf(f, "%s{result=\"failure\"} %llu\n", name, failed);
}

static void
emit_policy_reloads(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g)
{
    (void)g;
    emit_results(f, name, atomic_load(&m->reload_ok), atomic_load(&m->reload_failed));
}

static void
emit_exceptions_reloads(FILE *f, const char *name, struct metrics *m,
                        const struct metrics_gauges *g)
{
    (void)g;
    emit_results(f, name, atomic_load(&m->exceptions_reload_ok),
                 atomic_load(&m->exceptions_reload_failed));
}

// A label value as the text format wants it: backslash, quote and line feed escaped.
static void
label_value(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void
emit_exception_uses(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g)
{
    (void)g;
    size_t n = atomic_load(&m->exception_count);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{exception=\"", name);
        label_value(f, m->exception_names[i]);
        fprintf(f, "\"} %llu\n", (unsigned long long)atomic_load(&m->exception_uses[i]));
    }
    uint_fast64_t other = atomic_load(&m->exception_uses[METRICS_EXCEPTIONS_MAX]);
    if (other > 0)
        fprintf(f, "%s{exception=\"_other\"} %llu\n", name, (unsigned long long)other);
}

static void
emit_tls_reloads(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g)
{
    (void)m;
    emit_results(f, name, g->tls_reload_ok, g->tls_reload_failed);
}

static void
emit_build_info(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g)
{
    (void)m;
    (void)g;
    fprintf(f, "%s{version=\"%s\",revision=\"%s\"} 1\n", name, TG_VERSION, TG_REVISION);
}

// A row prints its value from struct scalars (at `value`) or, with `emit`, its own series.
static const struct row {
    const char *name, *type, *help;
    size_t value;
    void (*emit)(FILE *f, const char *name, struct metrics *m, const struct metrics_gauges *g);
} ROWS[] = {
    {"tableguard_admission_requests_total", "counter",
     "Admission requests answered, by webhook, operation and decision.", 0, emit_requests},
    {"tableguard_admission_request_duration_seconds", "histogram",
     "Time from the complete request body to the answer, audit write included.", 0, emit_duration},
    {"tableguard_admission_requests_in_flight", "gauge",
     "Admission requests being read or answered.", offsetof(struct scalars, in_flight), NULL},
    {"tableguard_http_request_body_bytes", "gauge",
     "Bytes of admission request bodies held (reserved from Content-Length).",
     offsetof(struct scalars, body_bytes), NULL},
    {"tableguard_http_request_body_limit_bytes", "gauge",
     "The most body bytes held at once (--body-memory).", offsetof(struct scalars, body_memory),
     NULL},
    {"tableguard_http_requests_waiting", "gauge",
     "Admission requests waiting, before their body is read, for room under --body-memory.",
     offsetof(struct scalars, waiting), NULL},
    {"tableguard_http_rejected_total", "counter",
     "Requests refused before or instead of an admission decision, by reason.", 0, emit_rejected},
    {"tableguard_http_bodies_not_held_total", "counter",
     "Admission requests whose body could not be held under --body-memory in time, read through "
     "and answered from their first bytes, by webhook and decision.",
     0, emit_not_held},
    {"tableguard_unguarded_requests_total", "counter",
     "Requests for a kind the policy does not guard, allowed untouched, by webhook.", 0,
     emit_unguarded},
    {"tableguard_policy_rules", "gauge", "Rules in the policy being served.",
     offsetof(struct scalars, policy_rules), NULL},
    {"tableguard_policy_reload_total", "counter", "Policy reloads, by result.", 0,
     emit_policy_reloads},
    {"tableguard_policy_last_reload_successful", "gauge",
     "1 when the last policy load succeeded, 0 when the last good policy is still serving.",
     offsetof(struct scalars, last_reload_ok), NULL},
    {"tableguard_policy_last_reload_success_timestamp_seconds", "gauge",
     "Time of the last successful policy load.", offsetof(struct scalars, last_success), NULL},
    {"tableguard_exceptions_reload_total", "counter", "Exceptions file loads, by result.", 0,
     emit_exceptions_reloads},
    {"tableguard_exception_uses_total", "counter",
     "Requests a violation of which an exception waived, by exception (at most 64 names; more "
     "share \"_other\").",
     0, emit_exception_uses},
    {"tableguard_audit_records_total", "counter", "Audit records written.",
     offsetof(struct scalars, audit_records), NULL},
    {"tableguard_audit_write_errors_total", "counter", "Audit records that failed to write.",
     offsetof(struct scalars, audit_errors), NULL},
    {"tableguard_tls_certificate_expiry_timestamp_seconds", "gauge",
     "notAfter of the serving certificate.", offsetof(struct scalars, cert_not_after), NULL},
    {"tableguard_tls_reload_total", "counter",
     "Certificate reloads that changed the serving pair, by result (a refused pair is counted "
     "once).",
     0, emit_tls_reloads},
    {"tableguard_build_info", "gauge", "Build version and revision; always 1.", 0, emit_build_info},
};

char *
metrics_render(struct metrics *m, const struct metrics_gauges *g, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (f == NULL)
        return NULL;
    const struct scalars v = {
        .in_flight = atomic_load(&m->in_flight),
        .body_bytes = (long long)g->body_bytes,
        .body_memory = (long long)g->body_memory,
        .waiting = (long long)g->waiting,
        .policy_rules = (long long)g->policy_rules,
        .last_reload_ok = atomic_load(&m->last_reload_ok),
        .last_success = atomic_load(&m->last_success),
        .audit_records = (long long)g->audit_records,
        .audit_errors = (long long)g->audit_errors,
        .cert_not_after = (long long)g->cert_not_after,
    };
    for (size_t i = 0; i < sizeof ROWS / sizeof *ROWS; i++) {
        const struct row *r = &ROWS[i];
        head(f, r->name, r->type, r->help);
        if (r->emit != NULL)
            r->emit(f, r->name, m, g);
        else
            fprintf(f, "%s %lld\n", r->name, *(const long long *)((const char *)&v + r->value));
    }
    process_metrics(f, m->start_time);
    fclose(f);
    return buf;
}

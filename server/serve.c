// SPDX-License-Identifier: Apache-2.0
// `tableguard serve`: parse flags, load the policy and certificate, start the listeners, reload
// on change or SIGHUP, drain on SIGTERM.
#include "server/serve.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy/exceptions.h"
#include "policy/policy.h"
#include "util/xalloc.h"
#include "server/audit.h"
#include "server/holder.h"
#include "server/http.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/tls.h"
#include "server/watch.h"

// Every flag, its environment variable (TABLEGUARD_ + the name upper-cased, '-' as '_'),
// its default and its help line. Values stay strings until serve_main converts them.
// The API server's largest review: an UPDATE carries the object and oldObject, each up to 3 MiB
// before it escapes <, > and & as six bytes each, so 2 x 6 x 3 MiB, and 1 MiB for the rest of
// the review. The default --max-body; a lower cap refuses some of its reviews with 413.
#define SERVE_LARGEST_REVIEW 38797312ULL

enum {
    O_POLICY,
    O_TLS_CERT,
    O_TLS_KEY,
    O_LISTEN,
    O_METRICS_LISTEN,
    O_AUDIT_LOG,
    O_AUDIT_HMAC_KEY,
    O_AUDIT_SYNC,
    O_AUDIT_MAX_SIZE,
    O_AUDIT_MAX_FILES,
    O_AUDIT_FAILURE,
    O_AUDIT_STDOUT,
    O_CLIENT_CA,
    O_TLS_MIN_VERSION,
    O_LOG_LEVEL,
    O_SHUTDOWN_DELAY,
    O_DRAIN_TIMEOUT,
    O_MAX_BODY,
    O_BODY_MEMORY,
    O_THREADS,
    O_CONNECTION_LIMIT,
    O_CONNECTION_TIMEOUT,
    O_REQUEST_TIMEOUT,
    O_RELOAD_INTERVAL,
    O_SERVICE,
    O_NAMESPACE,
    O_EXCEPTIONS,
    O_COUNT
};

static const struct flag {
    const char *name;
    const char *def;
    const char *help;
    unsigned long long max; // a whole number up to this; 0: the flag is text
} FLAGS[O_COUNT] = {
    [O_POLICY] = {"policy", NULL, "policy file (required)"},
    [O_TLS_CERT] = {"tls-cert", NULL, "serving certificate, PEM (required)"},
    [O_TLS_KEY] = {"tls-key", NULL, "its private key, PEM (required)"},
    [O_LISTEN] = {"listen", "0.0.0.0:8443", "HTTPS address"},
    [O_METRICS_LISTEN] = {"metrics-listen", "0.0.0.0:9090", "plain HTTP metrics address, or off"},
    [O_AUDIT_LOG] = {"audit-log", NULL, "audit log file, or - for stdout"},
    [O_AUDIT_HMAC_KEY] = {"audit-hmac-key", NULL, "key file: chain records with HMAC-SHA256"},
    [O_AUDIT_SYNC] = {"audit-sync", "batch", "none | batch | always"},
    [O_AUDIT_MAX_SIZE] = {"audit-max-size", "104857600", "rotate the audit log at this size",
                          1ULL << 40},
    [O_AUDIT_MAX_FILES] = {"audit-max-files", "10", "rotated audit files kept", 10000},
    [O_AUDIT_FAILURE] = {"audit-failure", "closed", "closed (answer 500) | open (serve, count)"},
    [O_AUDIT_STDOUT] =
        {"audit-stdout", "off",
         "on: also copy every record of the audit file to stdout (the container log)"},
    [O_CLIENT_CA] = {"client-ca", NULL, "require client certificates signed by this CA"},
    [O_TLS_MIN_VERSION] = {"tls-min-version", "1.2", "1.2 | 1.3"},
    [O_LOG_LEVEL] = {"log-level", "info", "debug | info | warn | error"},
    [O_SHUTDOWN_DELAY] = {"shutdown-delay", "5", "seconds between SIGTERM and closing the listener",
                          3600},
    [O_DRAIN_TIMEOUT] = {"drain-timeout", "20", "seconds to finish requests in flight", 3600},
    // The API server's largest review (SERVE_LARGEST_REVIEW).
    [O_MAX_BODY] = {"max-body", "38797312", "request body cap in bytes (413 above)", 1ULL << 30},
    // Two bodies at the cap: one slow client at the cap never holds the whole budget.
    [O_BODY_MEMORY] = {"body-memory", "77594624",
                       "bytes of request bodies held at once (at least max-body); more requests "
                       "wait their turn",
                       1ULL << 40},
    [O_THREADS] = {"threads", "0", "worker threads; 0: one per core", 256},
    [O_CONNECTION_LIMIT] = {"connection-limit", "1024", "concurrent connections", 65536},
    // Above the API server's 90 s keep-alive: it closes an idle connection first, so it never
    // sends a review on one the server is closing (it does not retry a POST).
    [O_CONNECTION_TIMEOUT] = {"connection-timeout", "120",
                              "idle seconds before a connection closes", 86400},
    [O_REQUEST_TIMEOUT] = {"request-timeout", "10",
                           "seconds from a request's line to its whole body, idle or not; "
                           "then the connection closes",
                           3600},
    [O_RELOAD_INTERVAL] = {"reload-interval", "10", "polling backstop for reloads, seconds", 3600},
    [O_SERVICE] = {"service", NULL, "Service name, to check the certificate's names"},
    [O_NAMESPACE] = {"namespace", NULL, "Service namespace, likewise"},
    [O_EXCEPTIONS] = {"exceptions", NULL,
                      "ProtectionExceptions file, reloaded like the policy (absent: none)"},
};

static void
env_name(int i, char out[64])
{
    size_t k = 0;
    memcpy(out, "TABLEGUARD_", 11);
    for (; FLAGS[i].name[k] && k < 48; k++) {
        char ch = FLAGS[i].name[k];
        out[11 + k] = ch == '-' ? '_' : (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
    }
    out[11 + k] = '\0';
}

static void
usage(FILE *f)
{
    fputs("usage: tableguard serve --policy FILE --tls-cert FILE --tls-key FILE [flags]\n\n"
          "Every flag can also be set with its environment variable.\n\n",
          f);
    for (int i = 0; i < O_COUNT; i++) {
        char env[64];
        env_name(i, env);
        fprintf(f, "  --%-20s %s (%s", FLAGS[i].name, FLAGS[i].help, env);
        if (FLAGS[i].def != NULL)
            fprintf(f, ", default %s", FLAGS[i].def);
        fputs(")\n", f);
    }
}

static int
parse_flags(int argc, char **argv, const char *val[O_COUNT])
{
    struct option longs[O_COUNT + 2];
    for (int i = 0; i < O_COUNT; i++) {
        val[i] = FLAGS[i].def;
        char env[64];
        env_name(i, env);
        const char *e = getenv(env);
        if (e != NULL && *e != '\0')
            val[i] = e;
        longs[i] = (struct option){FLAGS[i].name, required_argument, NULL, i};
    }
    longs[O_COUNT] = (struct option){"help", no_argument, NULL, 'h'};
    longs[O_COUNT + 1] = (struct option){NULL, 0, NULL, 0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c < 0 || c >= O_COUNT) {
            usage(stderr);
            return -1;
        }
        val[c] = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "tableguard serve: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    return 0;
}

static int
to_uint(const char *name, const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-') {
        fprintf(stderr, "tableguard serve: --%s must be a whole number up to %llu, not \"%s\"\n",
                name, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

// ---- reloads ---------------------------------------------------------------------------------

struct reload_kind;

struct reloader {
    struct tls *tls;
    struct http *http;
    struct metrics *metrics;
    pthread_mutex_t lock;      // a reload and a poll never run at once
    struct reload_kind *kinds; // [0] the policy, [1] the exceptions
};

// One reload logs at most this many diagnostics; `tableguard policy lint` shows them all.
#define RELOAD_LOGGED_DIAGS 20

static void
warn_cert(const char *msg)
{
    log_msg(LOGL_WARN, "certificate warning", "detail", msg, NULL);
}

// One file the server reloads with last-known-good: the policy, or the exceptions.
struct reload_kind {
    const char *what; // "policy" or "exceptions", in logs and /readyz
    const char *path;
    struct holder *holder;
    char failed[65];   // the last content that failed, so a poll does not repeat it
    atomic_bool force; // SIGHUP: report a failing file again
    char *detail;      // why the last reload failed, for /readyz; NULL: it did not
    void *(*load)(const char *buf, size_t len, const char *file, struct diag *d);
    const char *(*sha256)(const void *obj);
    void (*unref)(void *obj);
    void (*counted)(struct reloader *r, int ok); // metrics
    void (*loaded)(const void *obj);             // the log line of a success
};

// /readyz shows every reload that failed, policy first.
static void
show_details(struct reloader *r)
{
    const char *a = r->kinds[0].detail, *b = r->kinds[1].detail;
    char *both = a && b ? xasprintf("%s; %s", a, b) : NULL;
    http_set_detail(r->http, both ? both : a ? a : b);
    free(both);
}

static void
set_detail(struct reloader *r, struct reload_kind *k, char *detail)
{
    free(k->detail);
    k->detail = detail;
    show_details(r);
}

static void
log_failure(const struct reload_kind *k, const struct diag *d)
{
    char *msg = xasprintf("%s reload failed; the last good %s keeps serving", k->what, k->what);
    for (size_t i = 0; i < d->count && i < RELOAD_LOGGED_DIAGS; i++) {
        char *line = diag_format(&d->items[i]);
        log_msg(LOGL_ERROR, msg, "diagnostic", line, NULL);
        free(line);
    }
    free(msg);
    if (d->count > RELOAD_LOGGED_DIAGS) {
        char more[24];
        snprintf(more, sizeof more, "%zu", d->count - RELOAD_LOGGED_DIAGS);
        char *line = xasprintf("%s reload failed: more diagnostics not logged; run `tableguard "
                               "policy lint` on the file for all of them",
                               k->what);
        log_msg(LOGL_ERROR, line, "not_logged", more, NULL);
        free(line);
    }
}

static void
reload_kind(struct reloader *r, struct reload_kind *k)
{
    pthread_mutex_lock(&r->lock);
    struct diag d = {0};
    size_t len = 0;
    char *buf = policy_read_file(k->path, &len, &d);
    // An unreadable file is known by its diagnostic, so a poll does not report it again.
    char digest[65] = "";
    if (buf != NULL)
        policy_digest(buf, len, digest);
    else if (d.count > 0) {
        char *first = diag_format(&d.items[0]);
        policy_digest(first, strlen(first), digest);
        free(first);
    }
    void *cur = holder_get(k->holder);
    bool same = buf != NULL && cur != NULL && strcmp(digest, k->sha256(cur)) == 0;
    if (cur != NULL)
        k->unref(cur);
    bool force = atomic_exchange(&k->force, false);
    bool seen_failing = !force && digest[0] && strcmp(digest, k->failed) == 0;
    if (same || seen_failing) {
        if (same && k->failed[0]) {
            // Reverted to the serving file: the failure no longer stands.
            k->failed[0] = '\0';
            set_detail(r, k, NULL);
            k->counted(r, 1);
        }
        goto out;
    }
    void *obj = buf ? k->load(buf, len, k->path, &d) : NULL;
    if (obj == NULL) {
        snprintf(k->failed, sizeof k->failed, "%s", digest);
        log_failure(k, &d);
        char *first = d.count ? diag_format(&d.items[0]) : xstrdup("unknown error");
        set_detail(r, k,
                   xasprintf("%s reload failed, last good %s serving: %s%s", k->what, k->what,
                             first, d.count > 1 ? " (and more, see the log)" : ""));
        free(first);
        k->counted(r, 0);
        goto out;
    }
    k->loaded(obj);
    holder_set(k->holder, obj);
    k->failed[0] = '\0';
    set_detail(r, k, NULL);
    k->counted(r, 1);
out:
    free(buf);
    diag_free(&d);
    pthread_mutex_unlock(&r->lock);
}

static void
reload_policy(void *arg)
{
    struct reloader *r = arg;
    reload_kind(r, &r->kinds[0]);
}

static void
reload_exceptions(void *arg)
{
    struct reloader *r = arg;
    reload_kind(r, &r->kinds[1]);
}

static void
reload_tls(void *arg)
{
    struct reloader *r = arg;
    bool changed = false;
    char err[512];
    if (tls_reload(r->tls, &changed, warn_cert, err, sizeof err) != 0) {
        log_msg(LOGL_ERROR, "certificate reload refused; the current certificate keeps serving",
                "error", err, NULL);
        http_set_cert_failure(r->http, err);
        return;
    }
    http_set_cert_failure(r->http, NULL);
    if (changed)
        log_msg(LOGL_INFO, "certificate reloaded: new handshakes use it", NULL);
}

static void *
policy_ref_v(void *p)
{
    return policy_ref(p);
}

static void
policy_unref_v(void *p)
{
    policy_unref(p);
}

static const struct holder_type POLICY_HOLDER = {policy_ref_v, policy_unref_v};

static void *
load_policy_v(const char *buf, size_t len, const char *file, struct diag *d)
{
    return policy_load_buffer(buf, len, file, d);
}

static const char *
policy_sha256_v(const void *p)
{
    return policy_sha256(p);
}

static void
count_policy(struct reloader *r, int ok)
{
    metrics_policy_reload(r->metrics, ok, time(NULL));
}

static void
log_policy(const void *obj)
{
    const struct policy *p = obj;
    char rules[24];
    snprintf(rules, sizeof rules, "%zu", policy_spec(p)->rule_count);
    log_msg(LOGL_INFO, "policy reloaded", "policy", policy_spec(p)->name, "sha256",
            policy_sha256(p), "rules", rules, NULL);
}

static void *
exceptions_ref_v(void *x)
{
    return exceptions_ref(x);
}

static void
exceptions_unref_v(void *x)
{
    exceptions_unref(x);
}

static const struct holder_type EXCEPTIONS_HOLDER = {exceptions_ref_v, exceptions_unref_v};

static void *
load_exceptions_v(const char *buf, size_t len, const char *file, struct diag *d)
{
    return exceptions_load_buffer(buf, len, file, d);
}

static const char *
exceptions_sha256_v(const void *x)
{
    return exceptions_sha256(x);
}

static void
count_exceptions(struct reloader *r, int ok)
{
    metrics_exceptions_reload(r->metrics, ok);
}

static void
log_exceptions(const void *obj)
{
    const struct exceptions *x = obj;
    char n[24];
    snprintf(n, sizeof n, "%zu", exceptions_count(x));
    log_msg(LOGL_INFO, "exceptions reloaded", "exceptions", exceptions_name(x), "sha256",
            exceptions_sha256(x), "count", n, NULL);
}

// Loads the exceptions file named by --exceptions at startup; a file that is missing or does not
// load is fatal then (only a reload keeps the last good exceptions). NULL and 0 without the flag.
static int
load_exceptions_at_start(const char *path, struct exceptions **out)
{
    *out = NULL;
    if (path == NULL)
        return 0;
    struct diag d = {0};
    *out = exceptions_load_file(path, &d);
    diag_print(&d, stderr);
    diag_free(&d);
    if (*out == NULL) {
        log_msg(LOGL_ERROR, "the exceptions file does not load; not serving", "exceptions", path,
                NULL);
        return -1;
    }
    return 0;
}

// ---- main ------------------------------------------------------------------------------------

// After the drain, how long SIGTERM waits for a reload in progress before exiting anyway.
#define WATCH_STOP_WAIT 3

// The flags, converted: text as given (or NULL), whole numbers checked against their limits.
struct config {
    const char *val[O_COUNT];
    unsigned long long num[O_COUNT];
    enum log_level level;
    bool audit_fail_open, metrics_off;
};

// Parses and checks the flags. Returns 0, 1 after --help, or -1 (a usage error, reported).
static int
configure(int argc, char **argv, struct config *cfg)
{
    int rc = parse_flags(argc, argv, cfg->val);
    if (rc != 0)
        return rc;
    const char **val = cfg->val;
    for (int i = O_POLICY; i <= O_TLS_KEY; i++) {
        if (val[i] == NULL) {
            fprintf(stderr, "tableguard serve: --%s is required\n", FLAGS[i].name);
            return -1;
        }
    }
    if (log_level_parse(val[O_LOG_LEVEL], &cfg->level) != 0) {
        fprintf(stderr, "tableguard serve: --log-level must be debug, info, warn or error\n");
        return -1;
    }
    // The audit flags count only with an audit log.
    bool audit = val[O_AUDIT_LOG] != NULL;
    for (int i = 0; i < O_COUNT; i++) {
        bool audit_flag = i == O_AUDIT_MAX_SIZE || i == O_AUDIT_MAX_FILES;
        if (FLAGS[i].max != 0 && (audit || !audit_flag) &&
            to_uint(FLAGS[i].name, val[i], FLAGS[i].max, &cfg->num[i]) != 0)
            return -1;
    }
    // Left at its default, the budget grows with a raised cap rather than refusing to start:
    // two bodies at the cap, so one slow client at the cap never stops the others.
    if (val[O_BODY_MEMORY] == FLAGS[O_BODY_MEMORY].def &&
        cfg->num[O_BODY_MEMORY] < 2 * cfg->num[O_MAX_BODY])
        cfg->num[O_BODY_MEMORY] = 2 * cfg->num[O_MAX_BODY];
    if (cfg->num[O_BODY_MEMORY] < cfg->num[O_MAX_BODY]) {
        fprintf(stderr,
                "tableguard serve: --body-memory (%llu) must be at least --max-body (%llu)"
                ", or a request at the cap could never be read\n",
                cfg->num[O_BODY_MEMORY], cfg->num[O_MAX_BODY]);
        return -1;
    }
    if (strcmp(val[O_AUDIT_STDOUT], "on") != 0 && strcmp(val[O_AUDIT_STDOUT], "off") != 0) {
        fprintf(stderr, "tableguard serve: --audit-stdout must be on or off\n");
        return -1;
    }
    cfg->audit_fail_open = strcmp(val[O_AUDIT_FAILURE], "open") == 0;
    if (!cfg->audit_fail_open && strcmp(val[O_AUDIT_FAILURE], "closed") != 0) {
        fprintf(stderr, "tableguard serve: --audit-failure must be closed or open\n");
        return -1;
    }
    enum audit_sync sync;
    if (audit && audit_sync_parse(val[O_AUDIT_SYNC], &sync) != 0) {
        fprintf(stderr, "tableguard serve: --audit-sync must be none, batch or always\n");
        return -1;
    }
    if (cfg->num[O_THREADS] == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->num[O_THREADS] = n > 0 ? (unsigned long long)n : 1;
    }
    cfg->metrics_off = strcmp(val[O_METRICS_LISTEN], "off") == 0 || val[O_METRICS_LISTEN][0] == 0;
    return 0;
}

// What serve_main opens, in order, and closes in reverse.
struct server {
    struct tls *tls;
    struct audit *audit;
    struct metrics *metrics;
    struct holder *policies;
    struct holder *exceptions;
    struct http *http;
    struct watch *watch;
    struct reloader rl;
    struct reload_kind kinds[2]; // the policy, the exceptions
};

static struct audit *
open_audit(const struct config *cfg)
{
    struct audit_options ao = {.path = cfg->val[O_AUDIT_LOG],
                               .hmac_key_path = cfg->val[O_AUDIT_HMAC_KEY],
                               .max_size = cfg->num[O_AUDIT_MAX_SIZE],
                               .max_files = (unsigned)cfg->num[O_AUDIT_MAX_FILES],
                               .copy_stdout = strcmp(cfg->val[O_AUDIT_STDOUT], "on") == 0};
    (void)audit_sync_parse(cfg->val[O_AUDIT_SYNC], &ao.sync); // checked by configure
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    ao.replica = host;
    char err[512];
    struct audit *a = audit_open(&ao, err, sizeof err);
    if (a == NULL)
        log_msg(LOGL_ERROR, "cannot open the audit log", "error", err, NULL);
    return a;
}

// Loads the policy and the certificate, opens the audit log and starts the listeners and the
// reload watcher. Returns 0, or 1 with the reason logged; s holds what was opened either way.
static int
server_open(const struct config *cfg, struct server *s)
{
    const char *const *val = cfg->val;
    s->rl = (struct reloader){.kinds = s->kinds};
    pthread_mutex_init(&s->rl.lock, NULL);
    s->kinds[0] = (struct reload_kind){.what = "policy",
                                       .path = val[O_POLICY],
                                       .load = load_policy_v,
                                       .sha256 = policy_sha256_v,
                                       .unref = policy_unref_v,
                                       .counted = count_policy,
                                       .loaded = log_policy};
    s->kinds[1] = (struct reload_kind){.what = "exceptions",
                                       .path = val[O_EXCEPTIONS],
                                       .load = load_exceptions_v,
                                       .sha256 = exceptions_sha256_v,
                                       .unref = exceptions_unref_v,
                                       .counted = count_exceptions,
                                       .loaded = log_exceptions};
    atomic_init(&s->kinds[0].force, false);
    atomic_init(&s->kinds[1].force, false);
    struct diag d = {0};
    struct policy *policy = policy_load_file(val[O_POLICY], &d);
    if (policy == NULL) {
        diag_print(&d, stderr);
        log_msg(LOGL_ERROR, "the policy does not load; not serving", "policy", val[O_POLICY], NULL);
        diag_free(&d);
        return 1;
    }
    struct exceptions *exceptions;
    if (load_exceptions_at_start(val[O_EXCEPTIONS], &exceptions) != 0) {
        policy_unref(policy);
        return 1;
    }
    struct tls_options to = {val[O_TLS_CERT],        val[O_TLS_KEY], val[O_CLIENT_CA],
                             val[O_TLS_MIN_VERSION], val[O_SERVICE], val[O_NAMESPACE]};
    char err[512];
    s->tls = tls_new(&to, warn_cert, err, sizeof err);
    if (s->tls == NULL) {
        log_msg(LOGL_ERROR, "the certificate does not load; not serving", "error", err, NULL);
        exceptions_unref(exceptions);
        policy_unref(policy);
        return 1;
    }
    if (val[O_AUDIT_LOG] != NULL && (s->audit = open_audit(cfg)) == NULL) {
        exceptions_unref(exceptions);
        policy_unref(policy);
        return 1;
    }
    s->metrics = metrics_new();
    metrics_policy_loaded(s->metrics, time(NULL));
    s->policies = holder_new(&POLICY_HOLDER, policy);
    s->exceptions = holder_new(&EXCEPTIONS_HOLDER, exceptions);
    s->kinds[0].holder = s->policies;
    s->kinds[1].holder = s->exceptions;
    if (exceptions != NULL)
        metrics_exceptions_reload(s->metrics, 1);
    if (cfg->num[O_MAX_BODY] < SERVE_LARGEST_REVIEW) {
        char cap[24], largest[24];
        snprintf(cap, sizeof cap, "%llu", cfg->num[O_MAX_BODY]);
        snprintf(largest, sizeof largest, "%llu", SERVE_LARGEST_REVIEW);
        // A Content-Length over the cap is refused from the headers alone, before the review's
        // uid is read: the API server counts that 413 as a failed call (failurePolicy decides).
        log_msg(LOGL_WARN,
                "--max-body is below the API server's largest review: reviews it may send will be "
                "refused with 413, and failurePolicy decides their outcome",
                "max_body", cap, "largest_review", largest, NULL);
    }
    struct http_options ho = {.listen = val[O_LISTEN],
                              .metrics_listen = cfg->metrics_off ? NULL : val[O_METRICS_LISTEN],
                              .threads = (unsigned)cfg->num[O_THREADS],
                              .max_body = (size_t)cfg->num[O_MAX_BODY],
                              .body_memory = (size_t)cfg->num[O_BODY_MEMORY],
                              .connection_limit = (unsigned)cfg->num[O_CONNECTION_LIMIT],
                              .connection_timeout = (unsigned)cfg->num[O_CONNECTION_TIMEOUT],
                              .request_timeout = (unsigned)cfg->num[O_REQUEST_TIMEOUT],
                              .audit_fail_open = cfg->audit_fail_open};
    struct http_deps hd = {s->policies, s->tls, s->audit, s->metrics, s->exceptions};
    s->http = http_start(&ho, &hd, err, sizeof err);
    s->rl.tls = s->tls;
    s->rl.http = s->http;
    s->rl.metrics = s->metrics;
    s->watch = s->http ? watch_new((unsigned)cfg->num[O_RELOAD_INTERVAL], err, sizeof err) : NULL;
    if (s->watch == NULL ||
        watch_add(s->watch, val[O_POLICY], reload_policy, &s->rl, err, sizeof err) ||
        watch_add(s->watch, val[O_TLS_CERT], reload_tls, &s->rl, err, sizeof err) ||
        (val[O_EXCEPTIONS] != NULL &&
         watch_add(s->watch, val[O_EXCEPTIONS], reload_exceptions, &s->rl, err, sizeof err)) ||
        watch_start(s->watch, err, sizeof err)) {
        log_msg(LOGL_ERROR, "cannot start serving", "error", err, NULL);
        return 1;
    }
    char port[16], mport[16], nthreads[16];
    snprintf(port, sizeof port, "%u", http_port(s->http));
    snprintf(mport, sizeof mport, "%u", http_metrics_port(s->http));
    snprintf(nthreads, sizeof nthreads, "%llu", cfg->num[O_THREADS]);
    log_msg(LOGL_INFO, "serving", "listen", val[O_LISTEN], "port", port, "metrics_port", mport,
            "threads", nthreads, "policy", policy_spec(policy)->name, "sha256",
            policy_sha256(policy), "version", TG_VERSION, NULL);
    return 0;
}

// Serves until SIGTERM or SIGINT, reloading on SIGHUP, then drains.
static void
server_run(const struct config *cfg, struct server *s, const sigset_t *sigs)
{
    for (;;) {
        int sig = 0;
        if (sigwait(sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            // The watcher's thread reloads: this thread takes no lock a reload holds, so a
            // reload that hangs or crawls can never keep SIGTERM from being handled.
            log_msg(LOGL_INFO,
                    "SIGHUP: reloading the policy, exceptions and certificate, reopening the "
                    "audit log",
                    NULL);
            atomic_store(&s->kinds[0].force, true);
            atomic_store(&s->kinds[1].force, true);
            watch_kick(s->watch);
            audit_reopen(s->audit);
            continue;
        }
        log_msg(LOGL_INFO, sig == SIGTERM ? "SIGTERM: draining" : "SIGINT: draining", NULL);
        http_drain(s->http, (unsigned)cfg->num[O_SHUTDOWN_DELAY],
                   (unsigned)cfg->num[O_DRAIN_TIMEOUT]);
        return;
    }
}

// Closes what server_open opened, newest first; any member may be NULL.
static void
server_close(struct server *s)
{
    watch_free(s->watch);
    http_stop(s->http);
    audit_close(s->audit);
    holder_free(s->policies);
    holder_free(s->exceptions);
    free(s->kinds[0].detail);
    free(s->kinds[1].detail);
    metrics_free(s->metrics);
    tls_free(s->tls);
    pthread_mutex_destroy(&s->rl.lock);
}

int
serve_main(int argc, char **argv)
{
    struct config cfg = {0};
    int rc = configure(argc, argv, &cfg);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_set_level(cfg.level);
    // Signals are taken by sigwait in server_run, never delivered to the worker threads.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct server s = {0};
    rc = server_open(&cfg, &s);
    if (rc == 0) {
        server_run(&cfg, &s, &sigs);
        if (watch_stop(s.watch, WATCH_STOP_WAIT) != 0) {
            // Its objects are still in use by the reload: leave them to the exit.
            log_msg(LOGL_WARN, "a reload is still running; exiting without waiting for it", NULL);
            log_msg(LOGL_INFO, "stopped", NULL);
            return 0;
        }
        log_msg(LOGL_INFO, "stopped", NULL);
    }
    server_close(&s);
    return rc;
}

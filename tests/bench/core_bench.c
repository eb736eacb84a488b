// SPDX-License-Identifier: Apache-2.0
// The core without the network: times admit_handle (decode, evaluate, encode, audit record) per
// review against components and against rules, an UPDATE with oldObject against the CREATE of the
// same Application, the policy load, and the patch building.
//
// usage: core_bench PAYLOAD_DIR POLICY_FILE
//        core_bench --profile POLICY_FILE PAYLOAD mutate|validate N [EXCEPTIONS_FILE]
//                                     (N reviews, for a profiler; exceptions judged at BENCH_NOW)
// Prints tab-separated rows: "review", "update", "apply", "guarded", "scale", "rules", "load" and
// "patch", each described by its header line (starting with '#'). Every time is the calling
// thread's CPU time (CLOCK_THREAD_CPUTIME_ID): while the thread waits for the CPU, preempted by
// other work on the machine, its clock does not run. An absolute figure is the median of five
// batches of at least 50 ms. A ratio (UPDATE to CREATE, with profiles and exceptions to without,
// a guarded object to the Application) is measured in pairs: short batches of its two sides in
// turn, PAIRS times, and the ratio is the median of the pairs' ratios, with the middle half of
// them beside it, so that a change in the machine's speed moves both sides of a pair alike; the
// pairs of all the rows of a table are taken in rounds, so that each row's are spread over the
// table's whole time ("method" row: pair_order rounds). PAYLOAD_DIR is what tests/bench/payloads.py
// writes.
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/eval.h"
#include "policy/exceptions.h"
#include "policy/policy.h"
#include "util/xalloc.h"
#include "server/admit.h"
#include "server/review.h"

// The calling thread's CPU time, in seconds.
static double
now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// One timed operation: fn(arg) repeated.
typedef void (*bench_fn)(void *arg);

// The repetitions that make a batch of fn last at least min_s seconds.
static size_t
calibrate(bench_fn fn, void *arg, double min_s)
{
    size_t reps = 1;
    for (;;) {
        double t0 = now();
        for (size_t i = 0; i < reps; i++)
            fn(arg);
        double t = now() - t0;
        if (t >= min_s || reps >= (1u << 24))
            return reps;
        // Straight to about the right count once a batch is long enough to time.
        reps = t > min_s / 64 ? (size_t)(reps * 1.2 * min_s / t) + 1 : reps * 2;
    }
}

// Seconds per call of one batch of reps calls.
static double
batch(bench_fn fn, void *arg, size_t reps)
{
    double t0 = now();
    for (size_t i = 0; i < reps; i++)
        fn(arg);
    return (now() - t0) / (double)reps;
}

// Batches per absolute figure, and the least CPU time of each.
#define BATCHES 5
#define BATCH_S 0.05

// The median seconds per call of BATCHES batches of at least BATCH_S.
static double
median_per_call(bench_fn fn, void *arg)
{
    size_t reps = calibrate(fn, arg, BATCH_S);
    double t[BATCHES];
    for (int b = 0; b < BATCHES; b++)
        t[b] = batch(fn, arg, reps);
    qsort(t, BATCHES, sizeof *t, cmp_double);
    return t[BATCHES / 2];
}

// Pairs per ratio, and the least CPU time of each side's batch in a pair.
#define PAIRS 21
#define PAIR_BATCH_S 0.01

struct ratio {
    double a, b;          // seconds per call of each side in the median pair
    double ratio, lo, hi; // b/a: the median of the pairs' ratios, the middle half's bounds
};

static const double *pair_ratios; // what cmp_pair sorts by

static int
cmp_pair(const void *x, const void *y)
{
    return cmp_double(&pair_ratios[*(const int *)x], &pair_ratios[*(const int *)y]);
}

// One ratio being measured: b against a, PAIRS pairs of batches of each.
struct pairing {
    bench_fn fa, fb;
    void *a, *b;
    size_t ra, rb;               // calls per batch
    double ta[PAIRS], tb[PAIRS]; // seconds per call, pair by pair
};

// Times every pairing of p: each side calibrated, then PAIRS rounds, each taking one pair of
// every pairing in turn, in the order A B in even rounds and B A in odd ones, so that neither
// side always runs first. A pairing's pairs are so spread over the whole set's time: a moment
// when the machine runs the reviews slower or faster falls on a few pairs of each row, never on
// all the pairs of one.
static void
run_pairings(struct pairing *p, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        p[j].ra = calibrate(p[j].fa, p[j].a, PAIR_BATCH_S);
        p[j].rb = calibrate(p[j].fb, p[j].b, PAIR_BATCH_S);
    }
    for (int i = 0; i < PAIRS; i++)
        for (size_t j = 0; j < n; j++) {
            struct pairing *q = &p[j];
            if (i % 2 == 0) {
                q->ta[i] = batch(q->fa, q->a, q->ra);
                q->tb[i] = batch(q->fb, q->b, q->rb);
            } else {
                q->tb[i] = batch(q->fb, q->b, q->rb);
                q->ta[i] = batch(q->fa, q->a, q->ra);
            }
        }
}

// b/a of a pairing run_pairings timed: the median of its pairs' ratios and the middle half's
// bounds. The times given are those of the median pair, so that they show the ratio given; each
// side's own median may come from a moment when the machine ran faster or slower than the other
// side's.
static struct ratio
pairing_ratio(const struct pairing *p)
{
    double q[PAIRS];
    int order[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        q[i] = p->tb[i] / p->ta[i];
        order[i] = i;
    }
    pair_ratios = q;
    qsort(order, PAIRS, sizeof *order, cmp_pair);
    int mid = order[PAIRS / 2];
    return (struct ratio){p->ta[mid], p->tb[mid], q[mid], q[order[PAIRS / 4]],
                          q[order[PAIRS - 1 - PAIRS / 4]]};
}

static char *
read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "core_bench: cannot open %s\n", path);
        exit(2);
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            buf = xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static struct policy *
load_policy(const char *text, size_t len, const char *name)
{
    struct diag d = {0};
    struct policy *p = policy_load_buffer(text, len, name, &d);
    if (p == NULL) {
        fprintf(stderr, "core_bench: policy %s does not load:\n", name);
        diag_print(&d, stderr);
        exit(2);
    }
    diag_free(&d);
    return p;
}

// A policy with `rules` deny rules, each matching every production table, so validation checks
// every rule against every component.
static char *
policy_with_rules(size_t rules, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (f == NULL)
        abort();
    fputs("apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\nmetadata:\n  name: bench\n"
          "spec:\n  components:\n    types: [aws-dynamodb-kro]\n"
          "    tableNameFrom: properties.tableName\n"
          "  trait:\n    type: dynamodb-protection-kro\n    defaults:\n"
          "      deletionProtection: true\n      pointInTimeRecovery: true\n"
          "  exclude:\n    namespaces: [kube-system]\n  rules:\n",
          f);
    for (size_t i = 0; i < rules; i++)
        fprintf(f,
                "    - name: rule-%zu\n      tables: [\"orders-%zu-*\", \"*-prod\"]\n"
                "      namespaces: [\"*\"]\n      require:\n        deletionProtection: true\n"
                "        pointInTimeRecovery: true\n      action: %s\n",
                i, i, i % 2 ? "warn" : "deny");
    fclose(f);
    return buf;
}

// The time exceptions are judged at (payloads.py writes them in force then, or expired).
#define BENCH_NOW "2026-12-01T00:00:00Z"

static struct exceptions *
load_exceptions(const char *path, long long *now)
{
    size_t len;
    char *text = read_all(path, &len);
    struct diag d = {0};
    struct exceptions *x = exceptions_load_buffer(text, len, path, &d);
    char err[160];
    if (x == NULL || exceptions_parse_time(BENCH_NOW, now, err, sizeof err) != 0) {
        fprintf(stderr, "core_bench: exceptions %s do not load:\n", path);
        diag_print(&d, stderr);
        exit(2);
    }
    diag_free(&d);
    free(text);
    return x;
}

struct review_case {
    const struct policy *policy;
    enum admit_webhook webhook;
    const char *body;
    size_t len;
    const struct exceptions *exceptions; // NULL: none
    long long now;
};

// One review; exits unless it is answered 200. Returns the decision.
static enum admit_decision
admit_once(const struct review_case *c)
{
    struct admit_result res;
    admit_handle_with(c->policy, c->exceptions, c->now, c->webhook, c->body, c->len, true, &res);
    if (res.status != 200) {
        fprintf(stderr, "core_bench: a review was answered %d: %.*s\n", res.status,
                (int)res.body_len, res.body);
        exit(1);
    }
    enum admit_decision d = res.decision;
    admit_result_free(&res);
    return d;
}

static void
run_admit(void *arg)
{
    admit_once(arg);
}

static void
run_decode(void *arg)
{
    const struct review_case *c = arg;
    struct review_request req;
    char err[160];
    if (review_decode(c->body, c->len, &req, err, sizeof err) != 0) {
        fprintf(stderr, "core_bench: decode failed: %s\n", err);
        exit(1);
    }
    review_request_free(&req);
}

// Patch building alone: eval_mutate on a decoded review and the base64 encoding of its answer.
struct patch_case {
    const struct policy *policy;
    struct review_request req;
};

static void
run_patch(void *arg)
{
    struct patch_case *c = arg;
    struct eval_input in = {.object = c->req.object,
                            .namespace = c->req.namespace,
                            .username = c->req.username,
                            .groups = c->req.groups,
                            .group_count = c->req.group_count,
                            .operation = c->req.operation};
    struct eval_result ev;
    eval_mutate(c->policy, &in, &ev);
    struct review_response out = {
        .uid = c->req.uid, .allowed = true, .patch = ev.patch, .audit_decision = "patch"};
    size_t len;
    free(review_encode(&out, &len));
    eval_result_free(&ev);
}

struct load_case {
    const char *text;
    size_t len;
};

static void
run_load(void *arg)
{
    const struct load_case *c = arg;
    policy_unref(load_policy(c->text, c->len, "bench-rules.yaml"));
}

static const size_t COUNTS[] = {1, 10, 100, 1000};
#define NCOUNTS (sizeof COUNTS / sizeof *COUNTS)

static char *
payload(const char *dir, size_t n, const char *trait, const char *decision, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/c%zu-%s-%s.json", dir, n, trait, decision);
    return read_all(path, len);
}

// DIR/NAME.json
static char *
named_payload(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    return read_all(path, len);
}

// The UPDATE the API server sends when a sync changes nothing the policy looks at: the CREATE
// body with the same Application as oldObject. It prices the transition checks.
static char *
update_body(const char *create, size_t *len)
{
    cJSON *root = cJSON_Parse(create);
    cJSON *rq = cJSON_GetObjectItemCaseSensitive(root, "request");
    if (rq == NULL)
        abort();
    cJSON_DeleteItemFromObjectCaseSensitive(rq, "operation");
    cJSON_AddStringToObject(rq, "operation", "UPDATE");
    cJSON_DeleteItemFromObjectCaseSensitive(rq, "oldObject");
    cJSON_AddItemToObject(rq, "oldObject",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(rq, "object"), 1));
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    *len = strlen(body);
    return body;
}

static int
profile_main(int argc, char **argv)
{
    size_t len;
    char *text = read_all(argv[2], &len);
    struct policy *p = load_policy(text, len, argv[2]);
    free(text);
    struct review_case c = {
        p, strcmp(argv[4], "mutate") == 0 ? ADMIT_MUTATE : ADMIT_VALIDATE, NULL, 0, NULL, 0};
    struct exceptions *x = argc == 7 ? load_exceptions(argv[6], &c.now) : NULL;
    c.exceptions = x;
    char *body = read_all(argv[3], &c.len);
    c.body = body;
    for (long i = atol(argv[5]); i > 0; i--)
        run_admit(&c);
    free(body);
    exceptions_unref(x);
    policy_unref(p);
    return 0;
}

// Reviews against components, every shape, both webhooks. The decode of each review is timed in
// pairs with the review (a part against its whole), and given as that share of the review's own
// median: two medians timed apart could put the part above the whole.
static void
review_rows(const char *dir, const struct policy *policy)
{
    static const char *const traits[] = {"notrait", "trait"};
    static const char *const decisions[] = {"allow", "deny"};
    enum { SHAPES = NCOUNTS * 4, N = SHAPES * 2 };
    struct review_case c[N];
    struct pairing p[N];
    double us[N];
    char *body[SHAPES];
    size_t len = 0;
    for (size_t j = 0; j < N; j++) {
        size_t k = j / 8, t = j / 4 % 2, d = j / 2 % 2, w = j % 2;
        if (w == 0)
            body[j / 2] = payload(dir, COUNTS[k], traits[t], decisions[d], &len);
        c[j] = (struct review_case){
            policy, w ? ADMIT_VALIDATE : ADMIT_MUTATE, body[j / 2], len, NULL, 0};
        us[j] = median_per_call(run_admit, &c[j]) * 1e6;
        p[j] = (struct pairing){.fa = run_admit, .a = &c[j], .fb = run_decode, .b = &c[j]};
    }
    run_pairings(p, N);
    printf("#review\tcomponents\ttrait\tdecision\twebhook\tbytes\tus_per_review\tus_per_component"
           "\tdecode_us\tdecode_share\n");
    for (size_t j = 0; j < N; j++) {
        size_t k = j / 8, t = j / 4 % 2, d = j / 2 % 2, w = j % 2;
        double share = pairing_ratio(&p[j]).ratio;
        printf("review\t%zu\t%s\t%s\t%s\t%zu\t%.2f\t%.3f\t%.2f\t%.3f\n", COUNTS[k], traits[t],
               decisions[d], w ? "validate" : "mutate", c[j].len, us[j], us[j] / (double)COUNTS[k],
               us[j] * share, share);
    }
    fflush(stdout);
    for (size_t i = 0; i < SHAPES; i++)
        free(body[i]);
}

// UPDATE with oldObject against the CREATE of the same Application (the mutated, trait shape
// both webhooks see). "update": the CREATE body with the same Application as oldObject, the
// UPDATE the API server sends when a sync changes nothing the policy looks at. "apply": the
// realistic one (payloads.py's c<N>-trait-allow-update: `kubectl apply` of a running
// Application, object and oldObject with status), with both sizes.
static void
update_rows(const char *dir, const struct policy *policy, bool apply)
{
    enum { N = NCOUNTS * 2 };
    struct review_case c[N], u[N];
    struct pairing p[N];
    char *create[NCOUNTS], *update[NCOUNTS];
    for (size_t k = 0; k < NCOUNTS; k++) {
        size_t clen, ulen;
        create[k] = payload(dir, COUNTS[k], "trait", "allow", &clen);
        update[k] = apply ? payload(dir, COUNTS[k], "trait", "allow-update", &ulen)
                          : update_body(create[k], &ulen);
        for (int w = 0; w < 2; w++) {
            size_t j = 2 * k + (size_t)w;
            enum admit_webhook hook = w ? ADMIT_VALIDATE : ADMIT_MUTATE;
            c[j] = (struct review_case){policy, hook, create[k], clen, NULL, 0};
            u[j] = (struct review_case){policy, hook, update[k], ulen, NULL, 0};
            p[j] = (struct pairing){.fa = run_admit, .a = &c[j], .fb = run_admit, .b = &u[j]};
        }
    }
    run_pairings(p, N);
    if (apply)
        printf("#apply\tcomponents\twebhook\tcreate_bytes\tupdate_bytes\tcreate_us\tupdate_us"
               "\tratio\tratio_lo\tratio_hi\n");
    else
        printf("#update\tcomponents\twebhook\tcreate_us\tupdate_us\tratio\tratio_lo\tratio_hi\n");
    for (size_t j = 0; j < N; j++) {
        struct ratio r = pairing_ratio(&p[j]);
        const char *hook = j % 2 ? "validate" : "mutate";
        if (apply)
            printf("apply\t%zu\t%s\t%zu\t%zu\t", COUNTS[j / 2], hook, c[j].len, u[j].len);
        else
            printf("update\t%zu\t%s\t", COUNTS[j / 2], hook);
        printf("%.2f\t%.2f\t%.3f\t%.3f\t%.3f\n", r.a * 1e6, r.b * 1e6, r.ratio, r.lo, r.hi);
    }
    fflush(stdout);
    for (size_t k = 0; k < NCOUNTS; k++) {
        if (apply)
            free(update[k]);
        else
            cJSON_free(update[k]);
        free(create[k]);
    }
}

// Guarded objects against the 1-component Application, both webhooks: the ACK Table bare (as the
// newest guidewire graph renders it: /mutate patches, /validate denies), protected, and updated
// by its controller; the kro DynamoDBTable KubeVela creates and re-applies. Each is paired with
// the Application review it is held to: the same operation, and for the bare Table the
// Application /mutate patches and /validate denies (a production table without the trait). The
// Application's own rows (its CREATE, allowed; its bare CREATE; its `kubectl apply` UPDATE) come
// first, timed alone.
static void
guarded_rows(const char *dir, const struct policy *policy)
{
    static const struct {
        const char *object, *file;
        int against; // index of the Application row it is held to, or -1
    } guarded[] = {{"application-1", "c1-trait-allow", -1},
                   {"application-1-bare", "c1-notrait-deny", -1},
                   {"application-1-update", "c1-trait-allow-update", -1},
                   {"table-bare", "table-bare", 1},
                   {"table-protected", "table-protected", 0},
                   {"table-update", "table-update", 2},
                   {"dynamodbtable-create", "dynamodbtable-create", 0},
                   {"dynamodbtable-update", "dynamodbtable-update", 2}};
    enum { N = sizeof guarded / sizeof *guarded };
    struct review_case c[2][N]; // by webhook: /mutate, /validate
    struct pairing p[2 * N];    // the guarded rows' pairings, in the table's order
    double alone_us[2][N];
    char *text[N];
    size_t np = 0;
    for (size_t g = 0; g < N; g++) {
        size_t len;
        text[g] = named_payload(dir, guarded[g].file, &len);
        for (int w = 0; w < 2; w++)
            c[w][g] = (struct review_case){
                policy, w ? ADMIT_VALIDATE : ADMIT_MUTATE, text[g], len, NULL, 0};
    }
    for (size_t g = 0; g < N; g++)
        for (int w = 0; w < 2; w++) {
            int a = guarded[g].against;
            if (a < 0)
                alone_us[w][g] = median_per_call(run_admit, &c[w][g]) * 1e6;
            else
                p[np++] = (struct pairing){
                    .fa = run_admit, .a = &c[w][a], .fb = run_admit, .b = &c[w][g]};
        }
    run_pairings(p, np);
    np = 0;
    printf("#guarded\tobject\twebhook\tbytes\tus_per_review\tagainst\tagainst_us\tratio\tratio_lo"
           "\tratio_hi\n");
    for (size_t g = 0; g < N; g++)
        for (int w = 0; w < 2; w++) {
            const char *hook = w ? "validate" : "mutate";
            if (guarded[g].against < 0) {
                printf("guarded\t%s\t%s\t%zu\t%.2f\t-\t-\t-\t-\t-\n", guarded[g].object, hook,
                       c[w][g].len, alone_us[w][g]);
            } else {
                struct ratio r = pairing_ratio(&p[np++]);
                printf("guarded\t%s\t%s\t%zu\t%.2f\t%s\t%.2f\t%.3f\t%.3f\t%.3f\n",
                       guarded[g].object, hook, c[w][g].len, r.b * 1e6,
                       guarded[guarded[g].against].object, r.a * 1e6, r.ratio, r.lo, r.hi);
            }
        }
    fflush(stdout);
    for (size_t g = 0; g < N; g++)
        free(text[g]);
}

// 10-component reviews against the shipped policy, then with payloads.py's 100 team profiles
// (before the shipped ones: every table is tried against all of them) and its 100 exceptions
// (none waives these tables, so every finding is tried against all of them). The decision must
// not change.
static void
scale_rows(const char *dir, const struct policy *policy)
{
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/profiles-100.yaml", dir);
    char *text = read_all(path, &len);
    struct policy *many = load_policy(text, len, path);
    free(text);
    snprintf(path, sizeof path, "%s/exceptions-100.yaml", dir);
    long long now;
    struct exceptions *x = load_exceptions(path, &now);
    static const struct {
        const char *name;
        enum admit_webhook webhook;
    } reviews[] = {
        {"c10-trait-allow", ADMIT_VALIDATE},        {"c10-trait-allow", ADMIT_MUTATE},
        {"c10-notrait-allow", ADMIT_MUTATE},        {"c10-trait-deny", ADMIT_VALIDATE},
        {"c10-trait-allow-update", ADMIT_VALIDATE}, {"c10-trait-allow-update", ADMIT_MUTATE}};
    // Profiles alone, exceptions alone, both.
    static const struct {
        int profiles, exceptions;
    } variants[] = {{100, 0}, {0, 100}, {100, 100}};
    enum { R = sizeof reviews / sizeof *reviews, V = sizeof variants / sizeof *variants };
    struct review_case base[R], c[R][V];
    struct pairing p[R * V];
    char *body[R];
    for (size_t r = 0; r < R; r++) {
        base[r] = (struct review_case){policy, reviews[r].webhook, NULL, 0, NULL, now};
        body[r] = named_payload(dir, reviews[r].name, &base[r].len);
        base[r].body = body[r];
        enum admit_decision want = admit_once(&base[r]);
        for (size_t v = 0; v < V; v++) {
            c[r][v] = base[r];
            if (variants[v].profiles)
                c[r][v].policy = many;
            if (variants[v].exceptions)
                c[r][v].exceptions = x;
            if (admit_once(&c[r][v]) != want) {
                fprintf(stderr, "core_bench: %s decided otherwise with profiles/exceptions\n",
                        reviews[r].name);
                exit(1);
            }
            p[r * V + v] =
                (struct pairing){.fa = run_admit, .a = &base[r], .fb = run_admit, .b = &c[r][v]};
        }
    }
    run_pairings(p, R * V);
    printf("#scale\treview\twebhook\tprofiles\texceptions\tbase_us\tscaled_us\tratio\tratio_lo"
           "\tratio_hi\n");
    for (size_t r = 0; r < R; r++)
        for (size_t v = 0; v < V; v++) {
            struct ratio q = pairing_ratio(&p[r * V + v]);
            printf("scale\t%s\t%s\t%d\t%d\t%.2f\t%.2f\t%.3f\t%.3f\t%.3f\n", reviews[r].name,
                   admit_webhook_name(reviews[r].webhook), variants[v].profiles,
                   variants[v].exceptions, q.a * 1e6, q.b * 1e6, q.ratio, q.lo, q.hi);
        }
    fflush(stdout);
    for (size_t r = 0; r < R; r++)
        free(body[r]);
    exceptions_unref(x);
    policy_unref(many);
}

int
main(int argc, char **argv)
{
    review_init();
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "--profile") == 0)
        return profile_main(argc, argv);
    if (argc != 3) {
        fprintf(stderr, "usage: core_bench PAYLOAD_DIR POLICY_FILE\n");
        return 2;
    }
    const char *dir = argv[1];
    size_t plen;
    char *ptext = read_all(argv[2], &plen);
    struct policy *policy = load_policy(ptext, plen, argv[2]);
    free(ptext);

    printf("#method\tclock\tbatches\tbatch_ms\tpairs\tpair_batch_ms\tpair_order\n");
    printf("method\tCLOCK_THREAD_CPUTIME_ID\t%d\t%.0f\t%d\t%.0f\trounds\n", BATCHES, BATCH_S * 1e3,
           PAIRS, PAIR_BATCH_S * 1e3);
    review_rows(dir, policy);

    update_rows(dir, policy, false);
    update_rows(dir, policy, true);

    guarded_rows(dir, policy);
    scale_rows(dir, policy);

    // Rules: a 10-component review whose production tables satisfy every rule.
    printf("#rules\trules\tcomponents\twebhook\tus_per_review\tus_per_rule_component\n");
    size_t blen;
    char *body = payload(dir, 10, "trait", "allow", &blen);
    static const size_t RULES[] = {1, 10, 100, 1000};
    for (size_t r = 0; r < sizeof RULES / sizeof *RULES; r++) {
        size_t len;
        char *text = policy_with_rules(RULES[r], &len);
        struct policy *p = load_policy(text, len, "bench-rules.yaml");
        struct review_case c = {p, ADMIT_VALIDATE, body, blen, NULL, 0};
        double us = median_per_call(run_admit, &c) * 1e6;
        printf("rules\t%zu\t10\tvalidate\t%.2f\t%.4f\n", RULES[r], us,
               us / (double)(RULES[r] * 10));
        policy_unref(p);
        free(text);
    }
    free(body);

    printf("#load\trules\tbytes\tms_per_load\n");
    for (size_t r = 0; r < sizeof RULES / sizeof *RULES; r++) {
        struct load_case lc;
        char *text = policy_with_rules(RULES[r], &lc.len);
        lc.text = text;
        printf("load\t%zu\t%zu\t%.3f\n", RULES[r], lc.len, median_per_call(run_load, &lc) * 1e3);
        free(text);
    }

    // Patch building: every component lacks the trait, so each one gets an "add" operation.
    printf("#patch\tcomponents\tus_per_patch\tus_per_component\n");
    for (size_t k = 0; k < NCOUNTS; k++) {
        struct patch_case pc = {.policy = policy};
        size_t len;
        char *text = payload(dir, COUNTS[k], "notrait", "allow", &len);
        char err[160];
        if (review_decode(text, len, &pc.req, err, sizeof err) != 0) {
            fprintf(stderr, "core_bench: decode failed: %s\n", err);
            return 1;
        }
        double us = median_per_call(run_patch, &pc) * 1e6;
        printf("patch\t%zu\t%.2f\t%.3f\n", COUNTS[k], us, us / (double)COUNTS[k]);
        review_request_free(&pc.req);
        free(text);
    }
    policy_unref(policy);
    return 0;
}

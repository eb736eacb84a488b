// SPDX-License-Identifier: Apache-2.0
// `tableguard selftest`: readiness, then one dry-run CREATE review to each webhook, each answer
// checked the way the API server checks it (HTTP 200, AdmissionReview v1, the same uid).
#include "server/selftest.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/xalloc.h"
#include "server/client.h"

static void
usage(FILE *f)
{
    fputs("usage: tableguard selftest --url URL --ca FILE [--servername NAME] [--namespace NS]\n"
          "                           [--timeout SECONDS]\n\n"
          "Sends what the API server sends to a running tableguard: GET /readyz, then a dry-run\n"
          "CREATE AdmissionReview of an Application with one aws-dynamodb-kro table to /mutate\n"
          "and /validate. Each answer must be HTTP 200 and an AdmissionReview v1 response with\n"
          "the request's uid (and a JSONPatch, if any, from /mutate). Prints the decisions.\n\n"
          "  --url URL          the server, e.g. https://tableguard.tableguard-system.svc:443\n"
          "  --ca FILE          the CA bundle its certificate must verify against\n"
          "  --servername NAME  the name the certificate must carry (default: the URL's host)\n"
          "  --namespace NS     namespace of the reviewed Application (default: default)\n"
          "  --timeout SECONDS  per connection and read (default: 10)\n\n"
          "Exit status: 0 every check passed, 1 one failed, 2 usage error.\n",
          f);
}

static cJSON *
gvk(const char *kind_key, const char *kind)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "group", "core.oam.dev");
    cJSON_AddStringToObject(o, "version", "v1beta1");
    cJSON_AddStringToObject(o, kind_key, kind);
    return o;
}

// The review as the API server sends it for `kubectl create --dry-run=server`. Caller frees.
static char *
review_json(const char *uid, const char *ns)
{
    cJSON *review = cJSON_CreateObject();
    cJSON_AddStringToObject(review, "kind", "AdmissionReview");
    cJSON_AddStringToObject(review, "apiVersion", "admission.k8s.io/v1");
    cJSON *req = cJSON_AddObjectToObject(review, "request");
    cJSON_AddStringToObject(req, "uid", uid);
    cJSON_AddItemToObject(req, "kind", gvk("kind", "Application"));
    cJSON_AddItemToObject(req, "resource", gvk("resource", "applications"));
    cJSON_AddItemToObject(req, "requestKind", gvk("kind", "Application"));
    cJSON_AddItemToObject(req, "requestResource", gvk("resource", "applications"));
    cJSON_AddStringToObject(req, "name", "tableguard-selftest");
    cJSON_AddStringToObject(req, "namespace", ns);
    cJSON_AddStringToObject(req, "operation", "CREATE");
    cJSON *user = cJSON_AddObjectToObject(req, "userInfo");
    char *sa = xasprintf("system:serviceaccount:%s:tableguard-selftest", ns);
    cJSON_AddStringToObject(user, "username", sa);
    free(sa);
    cJSON *obj = cJSON_AddObjectToObject(req, "object");
    cJSON_AddStringToObject(obj, "apiVersion", "core.oam.dev/v1beta1");
    cJSON_AddStringToObject(obj, "kind", "Application");
    cJSON *md = cJSON_AddObjectToObject(obj, "metadata");
    cJSON_AddStringToObject(md, "name", "tableguard-selftest");
    cJSON_AddStringToObject(md, "namespace", ns);
    cJSON *comps = cJSON_AddArrayToObject(cJSON_AddObjectToObject(obj, "spec"), "components");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", "selftest-table");
    cJSON_AddStringToObject(c, "type", "aws-dynamodb-kro");
    cJSON *props = cJSON_AddObjectToObject(c, "properties");
    cJSON_AddStringToObject(props, "tableName", "tableguard-selftest-prod");
    cJSON_AddStringToObject(props, "region", "us-east-1");
    cJSON_AddItemToArray(comps, c);
    cJSON_AddNullToObject(req, "oldObject");
    cJSON_AddTrueToObject(req, "dryRun");
    cJSON *opts = cJSON_AddObjectToObject(req, "options");
    cJSON_AddStringToObject(opts, "kind", "CreateOptions");
    cJSON_AddStringToObject(opts, "apiVersion", "meta.k8s.io/v1");
    char *out = cJSON_PrintUnformatted(review);
    cJSON_Delete(review);
    if (out == NULL) {
        fputs("tableguard selftest: out of memory\n", stderr);
        abort();
    }
    return out;
}

struct target {
    const char *base; // URL without a trailing slash
    const char *ca, *servername;
    int timeout;
};

static int
call(const struct target *t, const char *method, const char *path, const char *body,
     struct client_response *resp)
{
    char err[512];
    char *url = xasprintf("%s%s", t->base, path);
    struct client_request req = {
        .method = method,
        .url = url,
        .ca_file = t->ca,
        .servername = t->servername,
        .content_type = body ? "application/json" : NULL,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .timeout_seconds = t->timeout,
    };
    int rc = client_do(&req, resp, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "FAIL  %s %s: %s\n", method, url, err);
    free(url);
    return rc;
}

// Checks one webhook's answer; prints the decision. Returns 0 or -1.
static int
check_review(const char *webhook, const struct client_response *resp, const char *uid)
{
    if (resp->status != 200) {
        fprintf(stderr, "FAIL  /%s answered HTTP %d: %.200s\n", webhook, resp->status, resp->body);
        return -1;
    }
    cJSON *doc = cJSON_ParseWithLength(resp->body, resp->body_len);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(doc, "response");
    const cJSON *api = cJSON_GetObjectItemCaseSensitive(doc, "apiVersion");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
    const cJSON *ruid = cJSON_GetObjectItemCaseSensitive(r, "uid");
    const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(r, "allowed");
    const cJSON *ptype = cJSON_GetObjectItemCaseSensitive(r, "patchType");
    const cJSON *patch = cJSON_GetObjectItemCaseSensitive(r, "patch");
    const char *problem = NULL;
    if (doc == NULL)
        problem = "the body is not JSON";
    else if (!cJSON_IsString(api) || strcmp(api->valuestring, "admission.k8s.io/v1") != 0 ||
             !cJSON_IsString(kind) || strcmp(kind->valuestring, "AdmissionReview") != 0)
        problem = "not an admission.k8s.io/v1 AdmissionReview";
    else if (!cJSON_IsString(ruid) || strcmp(ruid->valuestring, uid) != 0)
        problem = "response.uid is not the request's uid";
    else if (!cJSON_IsBool(allowed))
        problem = "response.allowed is not a boolean";
    else if (patch != NULL && (!cJSON_IsString(patch) || !cJSON_IsString(ptype) ||
                               strcmp(ptype->valuestring, "JSONPatch") != 0))
        problem = "a patch without patchType JSONPatch";
    if (problem != NULL) {
        fprintf(stderr, "FAIL  /%s: %s: %.200s\n", webhook, problem, resp->body);
        cJSON_Delete(doc);
        return -1;
    }
    const cJSON *msg =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "status"), "message");
    printf("ok    /%s answered: %s%s%s%s\n", webhook, cJSON_IsTrue(allowed) ? "allowed" : "denied",
           patch ? " with a JSON patch" : "", cJSON_IsString(msg) ? ": " : "",
           cJSON_IsString(msg) ? msg->valuestring : "");
    cJSON_Delete(doc);
    return 0;
}

// Parses the flags into *t and *ns; *base gets a copy of --url. Returns 0, 1 after --help, or
// -1 after a usage message.
static int
parse_flags(int argc, char **argv, struct target *t, const char **ns, char **base)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"ca", required_argument, NULL, 'c'},
        {"servername", required_argument, NULL, 's'},
        {"namespace", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'u') {
            free(*base);
            *base = xstrdup(optarg);
        } else if (c == 'c') {
            t->ca = optarg;
        } else if (c == 's') {
            t->servername = optarg;
        } else if (c == 'n') {
            *ns = optarg;
        } else if (c == 't' && (t->timeout = atoi(optarg)) > 0) {
            continue;
        } else if (c == 'h') {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "tableguard selftest: bad flag or value \"%s\"\n", argv[optind - 1]);
            usage(stderr);
            return -1;
        }
    }
    if (*base == NULL || t->ca == NULL || optind != argc) {
        fputs("tableguard selftest: --url and --ca are required, and nothing else\n", stderr);
        usage(stderr);
        return -1;
    }
    return 0;
}

int
selftest_main(int argc, char **argv)
{
    struct target t = {.timeout = 10};
    const char *ns = "default";
    char *base = NULL;
    int flags = parse_flags(argc, argv, &t, &ns, &base);
    if (flags != 0) {
        free(base);
        return flags > 0 ? 0 : 2;
    }
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    t.base = base;

    int rc = 0;
    struct client_response resp;
    if (call(&t, "GET", "/readyz", NULL, &resp) != 0) {
        free(base);
        return 1;
    }
    if (resp.status == 200) {
        printf("ok    %s/readyz answered 200\n", base);
    } else {
        fprintf(stderr, "FAIL  %s/readyz answered %d: %.200s\n", base, resp.status, resp.body);
        rc = 1;
    }
    client_response_free(&resp);

    static const char *const webhooks[] = {"mutate", "validate"};
    for (size_t i = 0; i < 2; i++) {
        char *uid = xasprintf("tableguard-selftest-%ld-%ld-%s", (long)getpid(), (long)time(NULL),
                              webhooks[i]);
        char *body = review_json(uid, ns);
        char *path = xasprintf("/%s?timeout=%ds", webhooks[i], t.timeout);
        if (call(&t, "POST", path, body, &resp) != 0 || check_review(webhooks[i], &resp, uid) != 0)
            rc = 1;
        client_response_free(&resp);
        free(path);
        free(body);
        free(uid);
    }
    free(base);
    return rc;
}

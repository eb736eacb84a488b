// SPDX-License-Identifier: Apache-2.0
// `tableguard webhooks delete`: two DELETE calls to the Kubernetes API with the pod's service
// account, as the chart's pre-delete Job runs them (no kubectl in the image).
#include "server/webhooks.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"
#include "server/client.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

static void
usage(FILE *f)
{
    fputs("usage: tableguard webhooks delete --name NAME [--api URL] [--token FILE] [--ca FILE]\n\n"
          "Deletes the MutatingWebhookConfiguration and the ValidatingWebhookConfiguration named\n"
          "NAME through the Kubernetes API; one already gone counts as deleted. In a pod the\n"
          "defaults are the in-cluster ones, so the chart's pre-delete Job passes only --name.\n\n"
          "  --name NAME    the configurations' name (the chart's full name)\n"
          "  --api URL      API server (default: https://$KUBERNETES_SERVICE_HOST:"
          "$KUBERNETES_SERVICE_PORT)\n"
          "  --token FILE   bearer token (default: " SA_DIR "/token)\n"
          "  --ca FILE      API server CA (default: " SA_DIR "/ca.crt)\n"
          "  --timeout SECONDS  per call (default: 10)\n\n"
          "Exit status: 0 both are gone, 1 an API call failed, 2 usage error.\n",
          f);
}

// The token file's first line, newly allocated, or NULL with a message printed.
static char *
read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "tableguard webhooks: %s: cannot open the service account token\n", path);
        return NULL;
    }
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        fprintf(stderr, "tableguard webhooks: %s: empty token\n", path);
        return NULL;
    }
    return xstrdup(buf);
}

// The in-cluster API server URL from the environment the kubelet sets, newly allocated.
static char *
in_cluster_url(void)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    if (host == NULL || *host == '\0')
        return NULL;
    if (port == NULL || *port == '\0')
        port = "443";
    return strchr(host, ':') ? xasprintf("https://[%s]:%s", host, port)
                             : xasprintf("https://%s:%s", host, port);
}

struct options {
    const char *name, *api, *token_file, *ca;
    int timeout;
};

// Parses the flags into *o. Returns 0, 1 after --help, or -1 after a usage message.
static int
parse_flags(int argc, char **argv, struct options *o)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"api", required_argument, NULL, 'a'},
        {"token", required_argument, NULL, 't'},
        {"ca", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'n') {
            o->name = optarg;
        } else if (c == 'a') {
            o->api = optarg;
        } else if (c == 't') {
            o->token_file = optarg;
        } else if (c == 'c') {
            o->ca = optarg;
        } else if (c == 'T' && (o->timeout = atoi(optarg)) > 0) {
            continue;
        } else if (c == 'h') {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "tableguard webhooks delete: bad flag or value \"%s\"\n",
                    argv[optind - 1]);
            usage(stderr);
            return -1;
        }
    }
    if (o->name == NULL || *o->name == '\0' || optind != argc ||
        strspn(o->name, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(o->name)) {
        fputs("tableguard webhooks delete: --name NAME (a Kubernetes object name) is required, "
              "and nothing else\n",
              stderr);
        usage(stderr);
        return -1;
    }
    return 0;
}

// Deletes one configuration; prints what happened. Returns 0 when it is gone, -1 otherwise.
static int
delete_one(const struct options *o, const char *base, const char *token, const char *resource,
           const char *kind)
{
    char err[512];
    char *url = xasprintf("%s/apis/admissionregistration.k8s.io/v1/%s/%s", base, resource, o->name);
    struct client_request req = {.method = "DELETE",
                                 .url = url,
                                 .ca_file = o->ca,
                                 .bearer_token = token,
                                 .timeout_seconds = o->timeout};
    struct client_response resp;
    int rc = 0;
    if (client_do(&req, &resp, err, sizeof err) != 0) {
        fprintf(stderr, "tableguard webhooks delete: %s %s: %s\n", kind, o->name, err);
        rc = -1;
    } else if (resp.status == 200 || resp.status == 202) {
        printf("%s %s deleted\n", kind, o->name);
    } else if (resp.status == 404) {
        printf("%s %s already gone\n", kind, o->name);
    } else {
        fprintf(stderr, "tableguard webhooks delete: %s %s: HTTP %d: %.300s\n", kind, o->name,
                resp.status, resp.body);
        rc = -1;
    }
    client_response_free(&resp);
    free(url);
    return rc;
}

int
webhooks_main(int argc, char **argv)
{
    struct options o = {.token_file = SA_DIR "/token", .ca = SA_DIR "/ca.crt", .timeout = 10};
    int flags = parse_flags(argc, argv, &o);
    if (flags != 0)
        return flags > 0 ? 0 : 2;
    char *base = o.api ? xstrdup(o.api) : in_cluster_url();
    if (base == NULL) {
        fputs("tableguard webhooks delete: not in a pod (KUBERNETES_SERVICE_HOST unset) and no "
              "--api\n",
              stderr);
        return 2;
    }
    char *token = read_token(o.token_file);
    int rc = token == NULL;
    if (token != NULL) {
        rc |= delete_one(&o, base, token, "mutatingwebhookconfigurations",
                         "MutatingWebhookConfiguration") != 0;
        rc |= delete_one(&o, base, token, "validatingwebhookconfigurations",
                         "ValidatingWebhookConfiguration") != 0;
    }
    free(token);
    free(base);
    return rc;
}

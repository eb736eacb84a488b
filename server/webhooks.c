// SPDX-License-Identifier: Apache-2.0
// `tableguard webhooks delete`: two DELETE calls to the Kubernetes API with the pod's service
// account, as the chart's pre-delete Job runs them (no kubectl in the image).
#include "server/webhooks.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/xalloc.h"
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

int
webhooks_main(int argc, char **argv)
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
    const char *name = NULL, *api = NULL, *token_file = SA_DIR "/token", *ca = SA_DIR "/ca.crt";
    int timeout = 10, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'a':
            api = optarg;
            break;
        case 't':
            token_file = optarg;
            break;
        case 'c':
            ca = optarg;
            break;
        case 'T':
            timeout = atoi(optarg);
            if (timeout <= 0) {
                fputs("tableguard webhooks delete: --timeout needs a positive number\n", stderr);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "tableguard webhooks delete: unknown flag or missing value \"%s\"\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (name == NULL || *name == '\0' || optind != argc ||
        strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(name)) {
        fputs("tableguard webhooks delete: --name NAME (a Kubernetes object name) is required, "
              "and nothing else\n",
              stderr);
        usage(stderr);
        return 2;
    }
    char *url_base = api ? xstrdup(api) : in_cluster_url();
    if (url_base == NULL) {
        fputs("tableguard webhooks delete: not in a pod (KUBERNETES_SERVICE_HOST unset) and no "
              "--api\n",
              stderr);
        return 2;
    }
    char *token = read_token(token_file);
    if (token == NULL) {
        free(url_base);
        return 1;
    }
    static const char *const kinds[][2] = {
        {"mutatingwebhookconfigurations", "MutatingWebhookConfiguration"},
        {"validatingwebhookconfigurations", "ValidatingWebhookConfiguration"},
    };
    int rc = 0;
    for (size_t i = 0; i < 2; i++) {
        char err[512];
        char *url =
            xasprintf("%s/apis/admissionregistration.k8s.io/v1/%s/%s", url_base, kinds[i][0], name);
        struct client_request req = {.method = "DELETE",
                                     .url = url,
                                     .ca_file = ca,
                                     .bearer_token = token,
                                     .timeout_seconds = timeout};
        struct client_response resp;
        if (client_do(&req, &resp, err, sizeof err) != 0) {
            fprintf(stderr, "tableguard webhooks delete: %s %s: %s\n", kinds[i][1], name, err);
            rc = 1;
        } else if (resp.status == 200 || resp.status == 202) {
            printf("%s %s deleted\n", kinds[i][1], name);
        } else if (resp.status == 404) {
            printf("%s %s already gone\n", kinds[i][1], name);
        } else {
            fprintf(stderr, "tableguard webhooks delete: %s %s: HTTP %d: %.300s\n", kinds[i][1],
                    name, resp.status, resp.body);
            rc = 1;
        }
        client_response_free(&resp);
        free(url);
    }
    free(token);
    free(url_base);
    return rc;
}

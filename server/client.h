// SPDX-License-Identifier: Apache-2.0
// A one-request HTTPS/1.1 client over GnuTLS, for the commands that talk to a server instead of
// serving: `selftest` (a review through the webhook's Service) and `webhooks delete` (the
// Kubernetes API). The peer is verified against a CA file and a host name; nothing is cached.
#ifndef TABLEGUARD_CLIENT_H
#define TABLEGUARD_CLIENT_H

#include <stddef.h>

// Largest response body read; a longer one is an error.
#define CLIENT_MAX_BODY (1024 * 1024)

struct client_request {
    const char *method;       // "GET", "POST", "DELETE"
    const char *url;          // https://HOST[:PORT]/PATH (HOST may be [IPv6])
    const char *ca_file;      // PEM bundle the server's chain must verify against
    const char *servername;   // name the certificate must carry; NULL: the URL's host
    const char *bearer_token; // Authorization: Bearer ..., or NULL
    const char *content_type; // with a body, or NULL
    const char *body;         // NULL for none
    size_t body_len;
    int timeout_seconds; // connect, handshake and each read; 0 means 10
};

struct client_response {
    int status; // HTTP status code
    char *body; // NUL-terminated, owned; free with client_response_free
    size_t body_len;
};

// Sends one request with `Connection: close` and reads the whole answer. Returns 0 with *resp
// filled (whatever the status), or -1 with a message in err (connection, TLS, verification or
// a malformed response). The caller frees *resp with client_response_free.
int client_do(const struct client_request *req, struct client_response *resp, char *err,
              size_t errlen);

// Parses a complete HTTP/1.1 response (status line, headers, a Content-Length, chunked or
// read-to-close body) from buf. Returns 0 with *resp filled, -1 with a message in err. Pure:
// the fuzz target drives it with arbitrary bytes.
int client_parse_response(const char *buf, size_t len, struct client_response *resp, char *err,
                          size_t errlen);

// Frees what client_do or client_parse_response put in *resp; NULL and zeroed records are fine.
void client_response_free(struct client_response *resp);

#endif

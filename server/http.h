// SPDX-License-Identifier: Apache-2.0
// The HTTP edge on libmicrohttpd: the HTTPS admission listener (epoll thread pool) and the plain
// HTTP metrics listener, body caps, routing, readiness and graceful drain.
#ifndef TABLEGUARD_HTTP_H
#define TABLEGUARD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "server/audit.h"
#include "server/holder.h"
#include "server/metrics.h"
#include "server/tls.h"

struct http_options {
    const char *listen;         // "host:port", "[v6]:port" or ":port"
    const char *metrics_listen; // likewise, or NULL for none
    unsigned threads;
    size_t max_body;
    size_t body_memory; // admission bodies held at once; >= max_body; more requests wait
    unsigned connection_limit;
    unsigned connection_timeout; // seconds a connection may stay idle
    unsigned request_timeout;    // seconds from a request's headers to its last body byte
    bool audit_fail_open;        // serve when the audit log cannot be written
};

// The objects the edge serves with; all borrowed and outliving the server. `policies` holds
// struct policy objects; `audit` may be NULL.
struct http_deps {
    struct holder *policies;
    struct tls *tls;
    struct audit *audit;
    struct metrics *metrics;
    struct holder *exceptions; // struct exceptions objects; the slot may hold NULL (none)
};

struct http;

// Binds both listeners and starts serving. Returns NULL with err filled on failure.
struct http *http_start(const struct http_options *o, const struct http_deps *d, char *err,
                        size_t errlen);

// Sets a line of readiness detail shown by /readyz (e.g. a failed reload); NULL clears it.
void http_set_detail(struct http *h, const char *detail);

// Sets why the last certificate reload failed: /readyz fails, saying so, until a reload succeeds
// (NULL clears it). The previous certificate keeps serving meanwhile.
void http_set_cert_failure(struct http *h, const char *why);

// Graceful stop: /readyz fails at once and answers say Connection: close; after `delay_s`
// seconds new connections are refused (those already in the listen backlog are accepted); every
// connection accepted is answered until it closes, for up to `drain_s` seconds (an idle one is
// left to its client until then); then both listeners may stop.
void http_drain(struct http *h, unsigned delay_s, unsigned drain_s);

// The bound port of the HTTPS listener (useful with port 0).
unsigned http_port(struct http *h);
unsigned http_metrics_port(struct http *h);

// Stops (at once if not drained) and frees; http_stop(NULL) is a no-op.
void http_stop(struct http *h);

#endif

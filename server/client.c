// SPDX-License-Identifier: Apache-2.0
// One HTTPS request over GnuTLS with the peer verified, and a strict HTTP/1.1 response parser.
#include "server/client.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/mono.h"
#include "util/xalloc.h"

// Headers plus the largest body plus chunk framing: anything longer is refused.
#define MAX_RESPONSE (CLIENT_MAX_BODY + 64 * 1024)

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void
client_response_free(struct client_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

// The line starting at p (before end), without its CRLF; *next is past the CRLF. NULL when no
// CRLF ends it.
static const char *
line_end(const char *p, const char *end, const char **next)
{
    for (const char *q = p; q + 1 < end; q++) {
        if (q[0] == '\r' && q[1] == '\n') {
            *next = q + 2;
            return q;
        }
    }
    return NULL;
}

// The value of a header line "Name: value" when its name is `name`, else NULL; *vend ends it.
static const char *
header_value(const char *line, const char *eol, const char *name, const char **vend)
{
    size_t n = strlen(name);
    if ((size_t)(eol - line) <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    const char *e = eol;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *vend = e;
    return v;
}

// Parses decimal (base 10) or hexadecimal (base 16) digits in [p, end) into *out, at most max.
static int
parse_number(const char *p, const char *end, int base, size_t max, size_t *out)
{
    size_t v = 0;
    if (p == end)
        return -1;
    for (; p < end; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            return -1;
        v = v * (size_t)base + (size_t)d;
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

static int
dechunk(const char *p, const char *end, struct client_response *resp, char *err, size_t errlen)
{
    char *body = xmalloc(1);
    size_t len = 0;
    for (;;) {
        const char *next, *eol = line_end(p, end, &next);
        if (eol == NULL) {
            free(body);
            return fail(err, errlen, "truncated chunked body");
        }
        const char *ext = memchr(p, ';', (size_t)(eol - p));
        size_t size;
        if (parse_number(p, ext ? ext : eol, 16, CLIENT_MAX_BODY, &size) != 0 ||
            len + size > CLIENT_MAX_BODY) {
            free(body);
            return fail(err, errlen, "bad chunk size (or a body over %d bytes)", CLIENT_MAX_BODY);
        }
        p = next;
        if (size == 0)
            break;
        if ((size_t)(end - p) < size + 2 || p[size] != '\r' || p[size + 1] != '\n') {
            free(body);
            return fail(err, errlen, "truncated chunk");
        }
        body = xrealloc(body, len + size + 1);
        memcpy(body + len, p, size);
        len += size;
        p += size + 2;
    }
    body[len] = '\0';
    resp->body = body;
    resp->body_len = len;
    return 0;
}

int
client_parse_response(const char *buf, size_t len, struct client_response *resp, char *err,
                      size_t errlen)
{
    const char *p = buf, *end = buf + len, *next;
    memset(resp, 0, sizeof *resp);
    const char *eol = line_end(p, end, &next);
    // "HTTP/1.1 200 OK": a version, a space, three digits, then a space or the end of the line.
    if (eol == NULL || eol - p < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' ||
        (eol - p > 12 && p[12] != ' '))
        return fail(err, errlen, "not an HTTP/1.x response");
    size_t status;
    if (parse_number(p + 9, p + 12, 10, 999, &status) != 0 || status < 100)
        return fail(err, errlen, "bad HTTP status line");
    bool chunked = false, have_length = false;
    size_t length = 0;
    for (p = next;;) {
        eol = line_end(p, end, &next);
        if (eol == NULL)
            return fail(err, errlen, "truncated response headers");
        if (eol == p) {
            p = next;
            break;
        }
        const char *v, *vend;
        if ((v = header_value(p, eol, "Content-Length", &vend)) != NULL) {
            size_t n;
            if (parse_number(v, vend, 10, CLIENT_MAX_BODY, &n) != 0 || (have_length && n != length))
                return fail(err, errlen, "bad Content-Length (or a body over %d bytes)",
                            CLIENT_MAX_BODY);
            length = n;
            have_length = true;
        } else if ((v = header_value(p, eol, "Transfer-Encoding", &vend)) != NULL) {
            if ((size_t)(vend - v) != 7 || strncasecmp(v, "chunked", 7) != 0)
                return fail(err, errlen, "unsupported Transfer-Encoding");
            chunked = true;
        }
        p = next;
    }
    resp->status = (int)status;
    if (chunked)
        return dechunk(p, end, resp, err, errlen);
    size_t avail = (size_t)(end - p);
    if (have_length && avail < length)
        return fail(err, errlen, "truncated body: %zu of %zu bytes", avail, length);
    size_t n = have_length ? length : avail;
    if (n > CLIENT_MAX_BODY)
        return fail(err, errlen, "body over %d bytes", CLIENT_MAX_BODY);
    resp->body = xstrndup(p, n);
    resp->body_len = n;
    return 0;
}

struct url {
    char host[256];
    char port[8];
    const char *path;
};

static int
parse_url(const char *s, struct url *u, char *err, size_t errlen)
{
    if (strncmp(s, "https://", 8) != 0)
        return fail(err, errlen, "URL \"%s\" is not https://HOST[:PORT]/PATH", s);
    const char *h = s + 8, *hend, *rest;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (hend == NULL)
            return fail(err, errlen, "URL \"%s\": unclosed [", s);
        rest = hend + 1;
        h++;
    } else {
        hend = h + strcspn(h, ":/");
        rest = hend;
    }
    if (hend == h || (size_t)(hend - h) >= sizeof u->host)
        return fail(err, errlen, "URL \"%s\" has no host", s);
    memcpy(u->host, h, (size_t)(hend - h));
    u->host[hend - h] = '\0';
    strcpy(u->port, "443");
    if (*rest == ':') {
        size_t n = strcspn(rest + 1, "/");
        size_t port;
        if (n == 0 || n >= sizeof u->port ||
            parse_number(rest + 1, rest + 1 + n, 10, 65535, &port) != 0)
            return fail(err, errlen, "URL \"%s\" has a bad port", s);
        memcpy(u->port, rest + 1, n);
        u->port[n] = '\0';
        rest += 1 + n;
    }
    if (*rest != '\0' && *rest != '/')
        return fail(err, errlen, "URL \"%s\" is not https://HOST[:PORT]/PATH", s);
    u->path = *rest ? rest : "/";
    return 0;
}

static int
connect_to(const struct url *u, int timeout, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0)
        return fail(err, errlen, "%s: %s", u->host, gai_strerror(rc));
    int fd = -1, saved = 0;
    // Linux applies SO_SNDTIMEO to connect(2) as well.
    struct timeval tv = {.tv_sec = timeout};
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return fail(err, errlen, "connect to %s port %s: %s", u->host, u->port,
                    strerror(saved ? saved : ECONNREFUSED));
    return fd;
}

static int
send_all(gnutls_session_t s, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = gnutls_record_send(s, p, n);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
            continue;
        if (w < 0)
            return (int)w;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

// Reads until the peer closes; a close without close_notify is how many servers end too.
// GnuTLS also answers GNUTLS_E_AGAIN after a TLS 1.3 post-handshake message (a session
// ticket), so only the clock says when the socket's receive timeout really ran out.
static int
read_all(gnutls_session_t s, int timeout, char **out, size_t *outlen, char *err, size_t errlen)
{
    size_t cap = 16384, len = 0;
    char *buf = xmalloc(cap);
    double deadline = mono_now() + timeout;
    for (;;) {
        if (cap - len < 4096)
            buf = xrealloc(buf, cap *= 2);
        ssize_t r = gnutls_record_recv(s, buf + len, cap - len);
        if ((r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) && mono_now() < deadline)
            continue;
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            free(buf);
            return fail(err, errlen, "timed out reading the response");
        }
        if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION)
            break;
        if (r < 0) {
            free(buf);
            return fail(err, errlen, "TLS read: %s", gnutls_strerror((int)r));
        }
        len += (size_t)r;
        if (len > MAX_RESPONSE) {
            free(buf);
            return fail(err, errlen, "response over %d bytes", MAX_RESPONSE);
        }
    }
    *out = buf;
    *outlen = len;
    return 0;
}

// The request line and headers, newly allocated; the body follows them unchanged.
static char *
request_head(const struct client_request *req, const struct url *u)
{
    bool v6 = strchr(u->host, ':') != NULL;
    return xasprintf("%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: tableguard/%s\r\n"
                     "Accept: application/json\r\nConnection: close\r\n%s%s%s%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     req->method, u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port,
                     TG_VERSION, req->bearer_token ? "Authorization: Bearer " : "",
                     req->bearer_token ? req->bearer_token : "", req->bearer_token ? "\r\n" : "",
                     req->content_type ? "Content-Type: " : "",
                     req->content_type ? req->content_type : "", req->content_type ? "\r\n" : "",
                     req->body ? req->body_len : 0);
}

int
client_do(const struct client_request *req, struct client_response *resp, char *err, size_t errlen)
{
    struct url u;
    memset(resp, 0, sizeof *resp);
    if (parse_url(req->url, &u, err, errlen) != 0)
        return -1;
    int timeout = req->timeout_seconds > 0 ? req->timeout_seconds : 10;
    const char *name = req->servername ? req->servername : u.host;

    gnutls_certificate_credentials_t cred = NULL;
    gnutls_session_t s = NULL;
    char *raw = NULL, *head = NULL;
    size_t rawlen = 0;
    int fd = -1, rc = -1, g;
    if ((g = gnutls_certificate_allocate_credentials(&cred)) < 0) {
        fail(err, errlen, "TLS: %s", gnutls_strerror(g));
        goto out;
    }
    if ((g = gnutls_certificate_set_x509_trust_file(cred, req->ca_file, GNUTLS_X509_FMT_PEM)) <=
        0) {
        fail(err, errlen, "%s: no CA certificate loaded (%s)", req->ca_file,
             g < 0 ? gnutls_strerror(g) : "empty file");
        goto out;
    }
    if ((fd = connect_to(&u, timeout, err, errlen)) < 0)
        goto out;
    if ((g = gnutls_init(&s, GNUTLS_CLIENT)) < 0 || (g = gnutls_set_default_priority(s)) < 0 ||
        (g = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0) {
        fail(err, errlen, "TLS: %s", gnutls_strerror(g));
        goto out;
    }
    // SNI only for names; the certificate is checked against name either way (IP SANs too).
    if (strspn(name, "0123456789.") != strlen(name) && strchr(name, ':') == NULL)
        gnutls_server_name_set(s, GNUTLS_NAME_DNS, name, strlen(name));
    gnutls_session_set_verify_cert(s, name, 0);
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, (unsigned)timeout * 1000);
    do {
        g = gnutls_handshake(s);
    } while (g < 0 && gnutls_error_is_fatal(g) == 0);
    if (g < 0) {
        if (g == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
            gnutls_datum_t why = {0};
            gnutls_certificate_verification_status_print(gnutls_session_get_verify_cert_status(s),
                                                         GNUTLS_CRT_X509, &why, 0);
            fail(err, errlen, "TLS handshake with %s: certificate for \"%s\" not trusted: %s",
                 u.host, name, why.data ? (char *)why.data : "?");
            gnutls_free(why.data);
        } else {
            fail(err, errlen, "TLS handshake with %s: %s", u.host, gnutls_strerror(g));
        }
        goto out;
    }
    head = request_head(req, &u);
    if ((g = send_all(s, head, strlen(head))) < 0 ||
        (req->body && (g = send_all(s, req->body, req->body_len)) < 0)) {
        fail(err, errlen, "TLS write: %s", gnutls_strerror(g));
        goto out;
    }
    if (read_all(s, timeout, &raw, &rawlen, err, errlen) != 0)
        goto out;
    rc = client_parse_response(raw, rawlen, resp, err, errlen);
out:
    free(head);
    free(raw);
    if (s != NULL) {
        if (rc == 0)
            gnutls_bye(s, GNUTLS_SHUT_WR);
        gnutls_deinit(s);
    }
    if (fd >= 0)
        close(fd);
    if (cred != NULL)
        gnutls_certificate_free_credentials(cred);
    return rc;
}

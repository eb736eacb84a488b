// SPDX-License-Identifier: Apache-2.0
// The TLS transport under each HTTPS connection: read-ahead, and an answer's header written
// with its body. libmicrohttpd writes an answer as two TLS records, header then body, with a
// gnutls_record_send each; GnuTLS's own transport makes a sendmsg of each. Here the header's
// record is kept (it is a complete, encrypted record) and goes out in the same system call as
// the first record of the body: one send(2) of both copied into one buffer for a short answer,
// one sendmsg(2) of both otherwise (send_pieces).
//
// Why this is safe with partial writes: the kept bytes are always written before anything
// after them, and libmicrohttpd counts the answer as sent only once its body's records are
// written. A short write that leaves kept bytes reports EAGAIN for the body's record, which
// GnuTLS keeps and libmicrohttpd writes again when the socket is writable; the kept remainder
// goes first. A header is kept only when a body follows it (never for HEAD), so kept bytes
// never wait for a write that does not come. (gnutls_record_cork would put both in one record
// too, but its uncork can only run after libmicrohttpd counted the answer as sent: an uncork
// that meets EAGAIN leaves the answer's end in GnuTLS with nothing to write it.)
#include "server/wire.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/socket.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "util/xalloc.h"

// Read-ahead: a review of a few KiB arrives in one read. Larger reads go straight to GnuTLS.
#define WIRE_IN 8192
// A kept header record: libmicrohttpd's answer headers and the TLS record around them.
#define WIRE_HOLD 1024
// Records GnuTLS hands over in one write (it gives one or two pieces per record).
#define WIRE_IOV 16
// Writes up to this size are copied into one buffer and sent with send(2) (send_pieces).
#define WIRE_FLAT 4096

struct wire {
    int fd;         // -1: the connection keeps GnuTLS's transport
    bool attached;  // wire_start has run
    bool head;      // the request being read is a HEAD: its answer has no body
    bool hold_next; // the next record written is an answer's header, and a body follows
    size_t held, held_off;
    size_t in_off, in_len;
    unsigned char hold[WIRE_HOLD];
    unsigned char in[WIRE_IN];
};

static ssize_t
wire_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
    struct wire *w = p;
    if (w->in_off < w->in_len) {
        size_t n = w->in_len - w->in_off < len ? w->in_len - w->in_off : len;
        memcpy(buf, w->in + w->in_off, n);
        w->in_off += n;
        return (ssize_t)n;
    }
    if (len >= sizeof w->in)
        return recv(w->fd, buf, len, 0);
    ssize_t r = recv(w->fd, w->in, sizeof w->in, 0);
    if (r <= 0)
        return r; // errno, EAGAIN included, is GnuTLS's to read
    size_t n = (size_t)r < len ? (size_t)r : len;
    memcpy(buf, w->in, n);
    w->in_off = n;
    w->in_len = (size_t)r;
    return (ssize_t)n;
}

// GnuTLS asks whether a read would find data before a read with a timeout: read-ahead counts.
static int
wire_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    struct wire *w = p;
    if (w->in_off < w->in_len)
        return 1;
    struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
    return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

// Writes the pieces in order with one system call. A short answer (the kept header and the
// body's record) is copied into one buffer and goes out with send(2): the kernel then has no
// message header and vector to copy in and check, which costs it more than the copy costs here.
static ssize_t
send_pieces(int fd, struct iovec *v, int n)
{
    unsigned char flat[WIRE_FLAT];
    if (n == 1)
        return send(fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += v[i].iov_len;
    if (len <= sizeof flat) {
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            memcpy(flat + off, v[i].iov_base, v[i].iov_len);
            off += v[i].iov_len;
        }
        return send(fd, flat, off, MSG_NOSIGNAL);
    }
    struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)n};
    return sendmsg(fd, &m, MSG_NOSIGNAL);
}

// Returns the bytes of iov written (kept bytes are not GnuTLS's), or -1 with errno.
static ssize_t
wire_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
    struct wire *w = p;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    bool keep = w->hold_next && w->held == 0 && total <= sizeof w->hold;
    w->hold_next = false;
    if (keep) {
        for (int i = 0; i < iovcnt; i++) {
            memcpy(w->hold + w->held, iov[i].iov_base, iov[i].iov_len);
            w->held += iov[i].iov_len;
        }
        return (ssize_t)total;
    }
    struct iovec v[WIRE_IOV + 1];
    size_t kept = w->held - w->held_off;
    int n = 0;
    if (kept > 0)
        v[n++] = (struct iovec){w->hold + w->held_off, kept};
    for (int i = 0; i < iovcnt && n < WIRE_IOV + 1; i++)
        v[n++] = iov[i];
    ssize_t r = send_pieces(w->fd, v, n);
    if (r < 0)
        return -1;
    if ((size_t)r < kept) {
        w->held_off += (size_t)r;
        errno = EAGAIN; // the socket is full; GnuTLS keeps the record and is called again
        return -1;
    }
    w->held = w->held_off = 0;
    r -= (ssize_t)kept;
    if (r == 0 && total > 0) {
        errno = EAGAIN;
        return -1;
    }
    return r;
}

struct wire *
wire_new_fd(int fd)
{
    struct wire *w = xmalloc(sizeof *w); // the buffers need no zeroing
    w->fd = fd;
    w->attached = w->head = w->hold_next = false;
    w->held = w->held_off = w->in_off = w->in_len = 0;
    return w;
}

struct wire *
wire_new(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return fi != NULL ? wire_new_fd(fi->connect_fd) : NULL;
}

// After the handshake, not before: GnuTLS decides on kernel TLS at the end of the handshake, and
// it reads the transport as a file descriptor to set it up (gnutls_transport_get_int2). With
// kernel TLS the kernel reads and writes the records, so the connection keeps GnuTLS's transport.
void
wire_start(struct wire *w, struct MHD_Connection *c)
{
    if (w == NULL || w->attached)
        return;
    const union MHD_ConnectionInfo *si =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    w->attached = true; // once, whatever the outcome
    if (si == NULL || si->tls_session == NULL)
        return;
    gnutls_session_t s = (gnutls_session_t)si->tls_session;
    if (gnutls_transport_is_ktls_enabled(s) != 0) {
        w->fd = -1; // not ours: wire_answer keeps nothing
        return;
    }
    wire_take(w, s);
}

void
wire_take(struct wire *w, gnutls_session_t s)
{
    w->attached = true;
    gnutls_transport_set_ptr(s, w);
    gnutls_transport_set_pull_function(s, wire_pull);
    gnutls_transport_set_pull_timeout_function(s, wire_pull_timeout);
    gnutls_transport_set_vec_push_function(s, wire_push);
}

void
wire_free(struct wire *w)
{
    free(w);
}

void
wire_request(struct wire *w, bool head)
{
    if (w != NULL)
        w->head = head;
}

void
wire_answer(struct wire *w, size_t body_len)
{
    if (w != NULL)
        w->hold_next = w->attached && w->fd >= 0 && body_len > 0 && !w->head;
}

void
wire_answer_failed(struct wire *w)
{
    if (w != NULL)
        w->hold_next = false;
}

// SPDX-License-Identifier: Apache-2.0
// Unit tests for server/wire: a real GnuTLS session pair over a loopback TCP connection whose
// buffers are small, the server side reading and writing through the wire. Answers are written as
// libmicrohttpd writes them (a header record, then the body's records, each retried with the
// same bytes after GNUTLS_E_AGAIN) while the client reads only when the server is blocked, a
// few bytes at a time: writes come back short at every position, inside kept headers too.
// What the client reads must be exactly what was sent, in order; a HEAD answer's header must
// leave without a body.
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "server/wire.h"

struct pair {
    int fds[2]; // [0] the server's socket, [1] the client's
    gnutls_session_t server, client;
    gnutls_anon_server_credentials_t scred;
    gnutls_anon_client_credentials_t ccred;
    struct wire *w;
};

static void
nonblocking_small(int fd)
{
    int size = 4096, one = 1; // the kernel's minimum is about this size
    // No Nagle, as libmicrohttpd's sockets: a small record is not held for an ACK.
    assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

// A TLS 1.2 session pair with anonymous key exchange (no certificates needed), handshake done
// on GnuTLS's own transport; then the server's session goes through the wire.
static void
pair_open(struct pair *p)
{
    // TCP over loopback: its writes come back short at any byte, where a Unix socket's stop
    // only between its large chunks. Small segments keep the buffers small.
    int l = socket(AF_INET, SOCK_STREAM, 0), seg = 536;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&a, alen), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    p->fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->fds[1] >= 0);
    assert_int_equal(setsockopt(p->fds[1], IPPROTO_TCP, TCP_MAXSEG, &seg, sizeof seg), 0);
    nonblocking_small(p->fds[1]);
    assert_true(connect(p->fds[1], (struct sockaddr *)&a, alen) == 0 || errno == EINPROGRESS);
    p->fds[0] = accept(l, NULL, NULL);
    assert_true(p->fds[0] >= 0);
    close(l);
    nonblocking_small(p->fds[0]);
    const char *prio = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ANON-ECDH";
    assert_int_equal(gnutls_anon_allocate_server_credentials(&p->scred), 0);
    assert_int_equal(gnutls_anon_allocate_client_credentials(&p->ccred), 0);
    assert_int_equal(gnutls_init(&p->server, GNUTLS_SERVER | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_init(&p->client, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_priority_set_direct(p->server, prio, NULL), 0);
    assert_int_equal(gnutls_priority_set_direct(p->client, prio, NULL), 0);
    assert_int_equal(gnutls_credentials_set(p->server, GNUTLS_CRD_ANON, p->scred), 0);
    assert_int_equal(gnutls_credentials_set(p->client, GNUTLS_CRD_ANON, p->ccred), 0);
    gnutls_transport_set_int(p->server, p->fds[0]);
    gnutls_transport_set_int(p->client, p->fds[1]);
    int rs = GNUTLS_E_AGAIN, rc = GNUTLS_E_AGAIN;
    for (int i = 0; i < 1000 && (rs != 0 || rc != 0); i++) {
        if (rs != 0)
            rs = gnutls_handshake(p->server);
        if (rc != 0)
            rc = gnutls_handshake(p->client);
        assert_true(rs == 0 || rs == GNUTLS_E_AGAIN);
        assert_true(rc == 0 || rc == GNUTLS_E_AGAIN);
    }
    assert_int_equal(rs, 0);
    assert_int_equal(rc, 0);
    p->w = wire_new_fd(p->fds[0]);
    wire_take(p->w, p->server);
}

static void
pair_close(struct pair *p)
{
    gnutls_deinit(p->server);
    gnutls_deinit(p->client);
    gnutls_anon_free_server_credentials(p->scred);
    gnutls_anon_free_client_credentials(p->ccred);
    wire_free(p->w);
    close(p->fds[0]);
    close(p->fds[1]);
}

// The client reads up to `most` bytes of application data into got, waiting up to 10 ms for
// them; returns how many.
static size_t
client_read(struct pair *p, unsigned char *got, size_t most)
{
    struct pollfd pfd = {.fd = p->fds[1], .events = POLLIN};
    if (gnutls_record_check_pending(p->client) == 0)
        poll(&pfd, 1, 10);
    ssize_t r = gnutls_record_recv(p->client, got, most);
    if (r == GNUTLS_E_AGAIN)
        return 0;
    assert_true(r > 0);
    return (size_t)r;
}

// Writes buf as libmicrohttpd does, retrying the same bytes after GNUTLS_E_AGAIN; while the
// server is blocked the client reads `step` bytes. Returns how many times it was blocked.
static int
server_write(struct pair *p, const unsigned char *buf, size_t len, unsigned char *got,
             size_t *got_len, size_t got_cap, size_t step)
{
    int blocked = 0;
    size_t off = 0;
    while (off < len) {
        ssize_t r = gnutls_record_send(p->server, buf + off, len - off);
        if (r == GNUTLS_E_AGAIN) {
            blocked++;
            assert_true(*got_len < got_cap);
            size_t most = got_cap - *got_len < step ? got_cap - *got_len : step;
            *got_len += client_read(p, got + *got_len, most);
            continue;
        }
        assert_true(r > 0);
        off += (size_t)r;
    }
    return blocked;
}

static void
fill(unsigned char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(seed * 31u + i * 7u + (i >> 8));
}

static void
answers_arrive_whole_through_short_writes(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p);
    enum { ANSWERS = 600, CAP = 8 << 20 };
    unsigned char *sent = malloc(CAP), *got = malloc(CAP);
    size_t sent_len = 0, got_len = 0;
    int blocked = 0;
    unsigned seed = 12345;
    for (int i = 0; i < ANSWERS; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t head = 100 + seed % 800; // a header record, kept (under 1 KiB with TLS overhead)
        size_t body = 1 + (seed >> 8) % (i % 10 == 0 ? 40000 : 600); // sometimes several records
        size_t step = 1 + (seed >> 16) % 700; // the client frees this much when asked
        fill(sent + sent_len, head + body, seed);
        wire_request(p.w, false);
        wire_answer(p.w, body);
        blocked += server_write(&p, sent + sent_len, head, got, &got_len, CAP, step);
        blocked += server_write(&p, sent + sent_len + head, body, got, &got_len, CAP, step);
        sent_len += head + body;
    }
    // The rest, now that the server is done.
    for (int i = 0; i < 1000 && got_len < sent_len; i++)
        got_len += client_read(&p, got + got_len, CAP - got_len);
    assert_true(blocked > ANSWERS); // the socket was full again and again
    assert_int_equal(got_len, sent_len);
    assert_memory_equal(got, sent, sent_len);
    free(sent);
    free(got);
    pair_close(&p);
}

static void
a_head_answer_leaves_without_a_body(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p);
    const char head[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\n";
    wire_request(p.w, true);
    wire_answer(p.w, 10); // libmicrohttpd sends no body for HEAD
    assert_int_equal(gnutls_record_send(p.server, head, sizeof head - 1), sizeof head - 1);
    unsigned char got[128];
    size_t n = 0;
    for (int i = 0; i < 100 && n < sizeof head - 1; i++) // a second at most
        n += client_read(&p, got + n, sizeof got - n);
    assert_int_equal(n, sizeof head - 1);
    assert_memory_equal(got, head, n);
    pair_close(&p);
}

static void
the_server_reads_what_the_client_sent(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p);
    enum { LEN = 100000 };
    unsigned char *sent = malloc(LEN), *got = malloc(LEN);
    fill(sent, LEN, 7);
    size_t off = 0, got_len = 0;
    for (int i = 0; i < 1000000 && got_len < LEN; i++) {
        if (off < LEN) {
            size_t piece = LEN - off < 3000 ? LEN - off : 3000;
            ssize_t r = gnutls_record_send(p.client, sent + off, piece);
            assert_true(r > 0 || r == GNUTLS_E_AGAIN);
            if (r > 0)
                off += (size_t)r;
        }
        size_t want = 5 + got_len % 9000; // small and large reads, as GnuTLS's caller makes
        if (want > LEN - got_len)
            want = LEN - got_len;
        ssize_t r = gnutls_record_recv(p.server, got + got_len, want);
        assert_true(r > 0 || r == GNUTLS_E_AGAIN);
        if (r > 0)
            got_len += (size_t)r;
    }
    assert_int_equal(got_len, LEN);
    assert_memory_equal(got, sent, LEN);
    free(sent);
    free(got);
    pair_close(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(answers_arrive_whole_through_short_writes),
        cmocka_unit_test(a_head_answer_leaves_without_a_body),
        cmocka_unit_test(the_server_reads_what_the_client_sent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

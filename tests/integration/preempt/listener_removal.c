// SPDX-License-Identifier: Apache-2.0
// Preloaded into the server by test_drain.py: every removal of a listening socket from an epoll
// set pauses 2 ms first, as a thread preempted at that point would. libmicrohttpd 0.9.75's
// MHD_quiesce_daemon and its epoll workers race to make that removal, and the loser aborted the
// process; the pause makes the race's window wide enough to be hit on most SIGTERMs under load.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

int
epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    static int (*real)(int, int, int, struct epoll_event *);
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "epoll_ctl");
    int listening = 0;
    socklen_t len = sizeof listening;
    if (op == EPOLL_CTL_DEL && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
        listening) {
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return real(epfd, op, fd, ev);
}

/*
 * raw_epoll.c - the practical ceiling for the benchmark in bench/run.sh.
 *
 * A single-threaded, edge-triggered epoll server that parses nothing: for
 * every read it counts the "\r\n\r\n" sequences it saw (the end of a request
 * header section, carried across reads) and answers each with the same
 * canned `GET /` response, all of them in one send(MSG_NOSIGNAL).  It knows
 * no routes, no bodies and no "Connection: close"; it is only meant for
 * scenarios that send `GET /` on keep-alive connections.
 *
 *   raw_epoll [--host 127.0.0.1] [--port 8083]
 *
 * Prints "listening on HOST:PORT" when ready; SIGINT/SIGTERM stop it.
 * The only state per connection is the partial "\r\n\r\n" match and the
 * bytes still owed when the socket's send buffer was full.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "Hello, World!";
#define RESP_LEN (sizeof RESPONSE - 1)

/* Responses prebuilt back to back; one send covers up to this many. */
#define BATCH 256
#define READ_BUF (64 * 1024)
#define MAX_EVENTS 1024

struct conn {
    uint8_t match;   /* how much of "\r\n\r\n" the last read ended with */
    uint8_t open;
    uint32_t pos;    /* offset of the next owed byte within RESPONSE */
    uint64_t owed;   /* bytes of responses not yet accepted by the kernel */
};

static char canned[BATCH * RESP_LEN];
static struct conn *conns;
static size_t nconns;
static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

static void drop(int fd)
{
    conns[fd].open = 0;
    close(fd); /* the only reference, so this also leaves the epoll set */
}

/* Push owed bytes until done or EAGAIN. Returns -1 if the peer is gone. */
static int flush(int fd)
{
    struct conn *c = &conns[fd];

    while (c->owed > 0) {
        size_t avail = sizeof canned - c->pos; /* canned starts at offset 0 */
        size_t len = c->owed < avail ? (size_t)c->owed : avail;
        ssize_t n = send(fd, canned + c->pos, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0; /* EPOLLOUT (edge) comes when space frees up */
            return -1;
        }
        c->owed -= (uint64_t)n;
        c->pos = (uint32_t)((c->pos + (size_t)n) % RESP_LEN);
    }
    return 0;
}

static void on_readable(int fd, char *buf, uint32_t events)
{
    struct conn *c = &conns[fd];

    for (;;) {
        ssize_t n = recv(fd, buf, READ_BUF, 0);
        if (n == 0) {
            drop(fd);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            drop(fd);
            return;
        }
        /* Count "\r\n\r\n" with a 4-state matcher so a boundary split
         * across reads is still counted once. */
        uint64_t count = 0;
        unsigned m = c->match;
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (ch == '\r')
                m = (m == 2) ? 3 : 1;
            else if (ch == '\n' && (m == 1 || m == 3)) {
                if (m == 3) {
                    count++;
                    m = 0;
                } else {
                    m = 2;
                }
            } else
                m = 0;
        }
        c->match = (uint8_t)m;
        if (count > 0) {
            c->owed += count * RESP_LEN;
            if (flush(fd) < 0) {
                drop(fd);
                return;
            }
        }
        /* Edge-triggered: a short read means the socket is drained, unless
         * the peer also hung up - then read on to see the 0 and close. */
        if (n < READ_BUF && !(events & EPOLLRDHUP))
            return;
    }
}

static void grow(size_t fd)
{
    size_t n = nconns ? nconns : 1024;

    while (n <= fd)
        n *= 2;
    conns = realloc(conns, n * sizeof *conns);
    if (conns == NULL) {
        perror("realloc");
        exit(1);
    }
    memset(conns + nconns, 0, (n - nconns) * sizeof *conns);
    nconns = n;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8083;
    static char buf[READ_BUF];
    struct epoll_event events[MAX_EVENTS];
    struct sockaddr_in addr;
    struct sigaction sa;
    int lfd, ep, one = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--host H] [--port N]\n", argv[0]);
            return 2;
        }
    }

    for (size_t i = 0; i < BATCH; i++)
        memcpy(canned + i * RESP_LEN, RESPONSE, RESP_LEN);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "%s: bad IPv4 address '%s'\n", argv[0], host);
        return 2;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, SOMAXCONN) < 0) {
        perror("listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.fd = lfd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        perror("epoll");
        return 1;
    }
    grow((size_t)lfd + 1);

    printf("listening on %s:%d\n", host, port);
    fflush(stdout);

    while (running) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                            continue;
                        break; /* EAGAIN, or EMFILE: the next edge retries */
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if ((size_t)cfd >= nconns)
                        grow((size_t)cfd);
                    memset(&conns[cfd], 0, sizeof conns[cfd]);
                    conns[cfd].open = 1;
                    /* Registered once, never modified: EPOLLOUT only fires
                     * after a send hit a full buffer. */
                    struct epoll_event ev = {
                        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                        .data.fd = cfd};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev) < 0) {
                        close(cfd);
                        conns[cfd].open = 0;
                    }
                }
                continue;
            }
            if (!conns[fd].open)
                continue;
            if (events[i].events & (EPOLLERR | EPOLLHUP)) {
                drop(fd);
                continue;
            }
            if ((events[i].events & EPOLLOUT) && conns[fd].owed > 0 && flush(fd) < 0) {
                drop(fd);
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLRDHUP))
                on_readable(fd, buf, events[i].events);
        }
    }
    return 0;
}

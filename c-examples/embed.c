/*
 * embed.c - connection-core inside an event loop the program already has.
 *
 * Many C servers own their epoll loop and cannot hand it over to a
 * library.  connection-core's own epoll set is itself one descriptor,
 * Connection_Fd(), which becomes readable whenever the core has work; the
 * caller puts it in its epoll set next to its own descriptors and, when it
 * is readable, calls Connection_ProcessTimeout(&conn, 0), which handles
 * one batch without waiting.
 *
 * Here the caller's loop also holds:
 *   - a timerfd of its own, ticking every 100 ms (the "other work" such a
 *     program does; it counts ticks), and
 *   - a signalfd for SIGINT/SIGTERM, so signals arrive as loop events
 *     (a plain signal handler calling Connection_Stop() works as well: it
 *     is async-signal-safe).
 *
 * The core's timers (header, idle, send, linger timeouts and the drain
 * deadline after Connection_Stop) only advance while it is called, so the
 * loop also calls Connection_ProcessTimeout(&conn, 0) on every tick: a
 * timeout then fires at most one tick (100 ms) late.  A program without a
 * periodic timer of its own would give epoll_wait a timeout instead.
 *
 * Routes: GET (or HEAD) / -> 200 "ticks N\n", N being the caller's tick
 * count; anything else -> 404.
 *
 * Options: --port N (default 8080, 0 = ephemeral), --host H (default
 * 127.0.0.1).  Prints "listening on HOST:PORT" once ready.  SIGINT or
 * SIGTERM -> Connection_Stop(), then ProcessTimeout until
 * CONNECTION_STOPPED (in-flight responses drain), Connection_Destroy(),
 * exit 0.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "connection.h"

#define TICK_MS 100

/* The caller's own state, reached by the handler through `user`. */
struct app {
    Connection conn;
    uint64_t ticks;
};

static void handler(const Request *req, Response *resp, void *user)
{
    const struct app *app = user;
    const char *method = Request_Method(req, NULL);
    const char *path = Request_Path(req, NULL);
    char body[64];
    int n;

    if (method && path && strcmp(path, "/") == 0 &&
        (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
        n = snprintf(body, sizeof body, "ticks %" PRIu64 "\n", app->ticks);
        (void)Response_AddHeader(resp, "Content-Type", "text/plain");
        (void)Response_Send(resp, body, (size_t)n);
        return;
    }
    (void)Response_SetStatus(resp, 404);
    (void)Response_AddHeader(resp, "Content-Type", "text/plain");
    (void)Response_Send(resp, "Not Found", 9);
}

static int add_fd(int epfd, int fd)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int parse_args(int argc, char **argv, ConnectionConfig *cfg)
{
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 0 || v > 65535) {
                fprintf(stderr, "%s: bad port '%s'\n", argv[0], argv[i]);
                return -1;
            }
            cfg->port = (uint16_t)v;
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            cfg->host = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--host H] [--port N]\n", argv[0]);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct app app; /* static: zeroed, and not on a signal's path */
    ConnectionConfig cfg;
    struct itimerspec every = {{0, TICK_MS * 1000000L}, {0, TICK_MS * 1000000L}};
    struct epoll_event events[16];
    sigset_t sigs;
    int epfd = -1, tfd = -1, sfd = -1, core_fd;
    int stopping = 0, stopped = 0, exit_code = 1;
    int rc, n, i;

    ConnectionConfig_Default(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 8080;
    if (parse_args(argc, argv, &cfg) != 0)
        return 2;

    /* Signals become readable events on sfd; block them first. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0) {
        perror("sigprocmask");
        return 1;
    }

    rc = Connection_InitWith(&app.conn, &cfg);
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "%s: cannot listen on %s:%u: %s\n", argv[0], cfg.host,
                (unsigned)cfg.port, Connection_StrError(rc));
        return 1;
    }
    Connection_SetHandler(&app.conn, handler, &app);
    core_fd = Connection_Fd(&app.conn);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (core_fd < 0 || epfd < 0 || tfd < 0 || sfd < 0 ||
        timerfd_settime(tfd, 0, &every, NULL) != 0 || add_fd(epfd, core_fd) != 0 ||
        add_fd(epfd, tfd) != 0 || add_fd(epfd, sfd) != 0) {
        perror("setting up the event loop");
        goto out;
    }

    printf("listening on %s:%d\n", cfg.host, Connection_Port(&app.conn));
    fflush(stdout);

    while (!stopped) {
        n = epoll_wait(epfd, events, (int)(sizeof events / sizeof events[0]), -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            goto out;
        }
        for (i = 0; i < n && !stopped; i++) {
            int fd = events[i].data.fd;
            int drive = 0;

            if (fd == tfd) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) == (ssize_t)sizeof expirations)
                    app.ticks += expirations;
                drive = 1; /* let the core's timers advance too */
            } else if (fd == sfd) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    if (!stopping) {
                        fprintf(stderr, "signal %u: stopping\n", si.ssi_signo);
                        Connection_Stop(&app.conn); /* makes core_fd readable */
                        stopping = 1;
                    }
                }
            } else if (fd == core_fd) {
                drive = 1;
            }
            if (!drive)
                continue;
            rc = Connection_ProcessTimeout(&app.conn, 0);
            if (rc == CONNECTION_STOPPED) {
                stopped = 1;
            } else if (rc < 0) {
                fprintf(stderr, "Connection_ProcessTimeout: %s\n", Connection_StrError(rc));
                goto out;
            }
        }
    }
    exit_code = 0;

out:
    Connection_Destroy(&app.conn);
    if (sfd >= 0)
        close(sfd);
    if (tfd >= 0)
        close(tfd);
    if (epfd >= 0)
        close(epfd);
    return exit_code;
}

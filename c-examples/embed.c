/*
 * embed.c - connection-core inside an event loop the program already has.
 *
 * Many C servers own their epoll loop and cannot hand it over to a
 * library.  connection-core's own epoll set is itself one descriptor,
 * Connection_Fd(), which becomes readable whenever the core has events;
 * the caller puts it in its epoll set next to its own descriptors.
 *
 * The core also has deadlines of its own (header, idle, send and linger
 * timeouts, the drain deadline after Connection_Stop, application
 * timers), and sometimes work left for its next turn with no event on its
 * descriptor.  Connection_NextTimeout() says how long the caller may
 * sleep: 0 when the core has work now, the milliseconds to its earliest
 * deadline, or -1 when it has none.  So each turn of the loop below is:
 *
 *     Connection_NextTimeout(&conn, &timeout);
 *     epoll_wait(epfd, ..., timeout);      (the program's own fds too)
 *     Connection_ProcessTimeout(&conn, 0)  (core fd readable, or time up)
 *
 * There is no periodic tick: an idle program sleeps until a client, a
 * signal or the core's next deadline wakes it, and a timeout fires when
 * it is due, not at the next tick.
 *
 * The loop also holds a signalfd for SIGINT/SIGTERM, so signals arrive as
 * loop events (a plain signal handler calling Connection_Stop() works as
 * well: it is async-signal-safe).
 *
 * Routes: GET (or HEAD) / -> 200 "wakeups N\n", N being how many times
 * the caller's epoll_wait has returned (it grows with traffic, not with
 * time); anything else -> 404.
 *
 * Options: --host H (default 127.0.0.1), --port N (default 8080, 0 = any
 * free port), --header-timeout-ms N.  Prints "listening on HOST:PORT"
 * once ready.  SIGINT or SIGTERM -> Connection_Stop(), then the loop goes
 * on until CONNECTION_STOPPED (in-flight responses drain),
 * Connection_Destroy(), exit 0.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "connection.h"

/* The caller's own state, reached by the handler through `user`. */
struct app {
    Connection conn;
    uint64_t wakeups;
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
        n = snprintf(body, sizeof body, "wakeups %" PRIu64 "\n", app->wakeups);
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

static const char usage[] =
    "usage: %s [--host ADDR] [--port N] [--header-timeout-ms N]\n"
    "defaults: 127.0.0.1, 8080 (0: any free port), then ConnectionConfig_Default\n";

static const struct option options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"header-timeout-ms", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* An option's value: a plain decimal number up to max, or exit 2. */
static unsigned long number(const char *s, unsigned long max)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10); /* ERANGE: ULLONG_MAX */

    if (*s < '0' || *s > '9' || *end != '\0' || n > max) {
        fprintf(stderr, "bad value '%s' (want a number up to %lu)\n", s, max);
        exit(2);
    }
    return (unsigned long)n;
}

int main(int argc, char **argv)
{
    static struct app app; /* static: zeroed, and not on a signal's path */
    ConnectionConfig cfg;
    struct epoll_event events[16];
    sigset_t sigs;
    int epfd = -1, sfd = -1, core_fd;
    int stopping = 0, stopped = 0, exit_code = 1;
    int opt, rc, n, i, timeout;

    ConnectionConfig_Default(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 8080;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'H': cfg.host = optarg; break;
        case 'p': cfg.port = (uint16_t)number(optarg, UINT16_MAX); break;
        case 't': cfg.header_timeout_ms = (uint32_t)number(optarg, UINT32_MAX); break;
        case 'h': printf(usage, argv[0]); return 0;
        default: fprintf(stderr, usage, argv[0]); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }

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
    sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (core_fd < 0 || epfd < 0 || sfd < 0 || add_fd(epfd, core_fd) != 0 ||
        add_fd(epfd, sfd) != 0) {
        perror("setting up the event loop");
        goto out;
    }

    printf("listening on %s:%d\n", cfg.host, Connection_Port(&app.conn));
    fflush(stdout);

    while (!stopped) {
        int drive;

        /* Sleep exactly as long as the core allows (-1: until an event). */
        rc = Connection_NextTimeout(&app.conn, &timeout);
        if (rc != CONNECTION_OK) {
            fprintf(stderr, "Connection_NextTimeout: %s\n", Connection_StrError(rc));
            goto out;
        }
        n = epoll_wait(epfd, events, (int)(sizeof events / sizeof events[0]), timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            goto out;
        }
        app.wakeups++;
        drive = (n == 0); /* the core's deadline came */
        for (i = 0; i < n; i++) {
            if (events[i].data.fd == core_fd) {
                drive = 1;
            } else if (events[i].data.fd == sfd) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    if (!stopping) {
                        fprintf(stderr, "signal %u: stopping\n", si.ssi_signo);
                        Connection_Stop(&app.conn); /* makes core_fd readable */
                        stopping = 1;
                    }
                }
            }
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
    exit_code = 0;

out:
    Connection_Destroy(&app.conn);
    if (sfd >= 0)
        close(sfd);
    if (epfd >= 0)
        close(epfd);
    return exit_code;
}

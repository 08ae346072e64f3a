/*
 * restart.c - replace a running server with a new binary and drop nothing,
 * the way nginx upgrades its binary.
 *
 *   SIGUSR2  fork, and exec this program's binary again in the child with
 *            the listening sockets inherited as descriptors 3, 4, ... and
 *            LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES set for the child
 *            (the systemd convention, so Connection_AddSystemdListeners
 *            adopts them).  The old process keeps serving meanwhile.
 *   SIGQUIT, SIGTERM, SIGINT
 *            Connection_Stop: stop accepting (our copy of each listening
 *            socket closes; the successor's copy keeps the socket, and the
 *            connections waiting in its backlog, alive), finish in-flight
 *            responses, exit 0.
 *
 * So: kill -USR2 $old; wait for the new one to print "restarted"; kill
 * -QUIT $old.  Clients keep connecting the whole time: the listening
 * socket never closes, so no connection is refused; the old process
 * answers what it accepted.  Started by systemd (--systemd) the same code
 * adopts systemd's sockets.
 *
 * Routes: GET / -> 200 "pid PID\n"; anything else -> 404.
 * Options: --host H (default 127.0.0.1), --port N (default 8080, 0: any).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "connection.h"

static Connection conn;
static volatile sig_atomic_t upgrade_requested;

static void on_request(const Request *req, Response *resp, void *user)
{
    char body[64];
    int n;

    (void)user;
    if (strcmp(Request_Path(req, NULL), "/") != 0) {
        Response_SetStatus(resp, 404);
        Response_Send(resp, "Not Found\n", 10);
        return;
    }
    n = snprintf(body, sizeof body, "pid %ld\n", (long)getpid());
    Response_AddHeader(resp, "Content-Type", "text/plain");
    Response_Send(resp, body, (size_t)n);
}

static void on_stop(int sig)
{
    int saved_errno = errno;

    (void)sig;
    Connection_Stop(&conn);
    errno = saved_errno;
}

static void on_upgrade(int sig)
{
    (void)sig;
    upgrade_requested = 1; /* the main loop forks: no fork in a handler */
}

/* In the child, between fork and exec: listeners to 3, 4, ... without
 * close-on-exec, the LISTEN_* variables for our own pid, then exec. */
static void exec_successor(char **argv, int count)
{
    int high[CONNECTION_MAX_LISTENERS];
    char value[32];
    int i;

    /* First out of the way of 3..3+count-1 (close-on-exec copies), then
     * into place: dup2 clears close-on-exec on the new descriptor. */
    for (i = 0; i < count; i++) {
        high[i] = fcntl(Connection_ListenerFd(&conn, i), F_DUPFD_CLOEXEC, 3 + count);
        if (high[i] < 0)
            _exit(127);
    }
    for (i = 0; i < count; i++) {
        if (dup2(high[i], 3 + i) < 0)
            _exit(127);
    }
    snprintf(value, sizeof value, "%d", count);
    setenv("LISTEN_FDS", value, 1);
    snprintf(value, sizeof value, "%ld", (long)getpid()); /* exec keeps the pid */
    setenv("LISTEN_PID", value, 1);
    unsetenv("LISTEN_FDNAMES");
    execvp(argv[0], argv); /* the binary now at our path: perhaps a new one */
    perror("execvp");
    _exit(127);
}

/* SIGUSR2: start the successor; we go on serving until told to stop. */
static void upgrade(char **argv)
{
    int count = Connection_ListenerCount(&conn);
    pid_t pid;

    if (count <= 0) {
        fprintf(stderr, "upgrade: no listeners to hand over\n");
        return;
    }
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return;
    }
    if (pid == 0)
        exec_successor(argv, count);
    printf("upgrade: successor pid %ld started\n", (long)pid);
    fflush(stdout);
}

static const struct option options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    ConnectionConfig cfg;
    struct sigaction sa;
    const char *host = "127.0.0.1";
    long port = 8080;
    int opt, rc, inherited;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'h': printf("usage: %s [--host H] [--port N]\n", argv[0]); return 0;
        default: return 2;
        }
    }
    if (port < 0 || port > 65535) {
        fprintf(stderr, "bad port\n");
        return 2;
    }

    ConnectionConfig_Default(&cfg);
    cfg.no_default_listener = true; /* inherited sockets, or host:port below */
    rc = Connection_InitWith(&conn, &cfg);
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "Connection_InitWith: %s\n", Connection_StrError(rc));
        return 1;
    }
    /* Sockets handed over (by our predecessor or by systemd), else our own.
     * 1: remove LISTEN_*, so a later successor is not confused by them. */
    inherited = getenv("LISTEN_FDS") != NULL;
    if (inherited)
        rc = Connection_AddSystemdListeners(&conn, 1);
    else
        rc = Connection_AddListenTcp(&conn, host, (uint16_t)port, 0);
    if (rc < 0) {
        fprintf(stderr, "listen: %s\n", Connection_StrError(rc));
        Connection_Destroy(&conn);
        return 1;
    }
    Connection_SetHandler(&conn, on_request, NULL);

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_upgrade;
    sigaction(SIGUSR2, &sa, NULL);

    if (inherited)
        printf("restarted: pid %ld serving %d inherited listener(s)\n", (long)getpid(),
               Connection_ListenerCount(&conn));
    else
        printf("listening on %s:%d\n", host, Connection_Port(&conn));
    fflush(stdout);

    /* A bounded wait, so a SIGUSR2 is seen within 100 ms. */
    while ((rc = Connection_ProcessTimeout(&conn, 100)) == CONNECTION_OK) {
        if (upgrade_requested) {
            upgrade_requested = 0;
            upgrade(argv);
        }
    }
    Connection_Destroy(&conn);
    if (rc != CONNECTION_STOPPED) {
        fprintf(stderr, "Connection_Process: %s\n", Connection_StrError(rc));
        return 1;
    }
    printf("pid %ld drained, exiting\n", (long)getpid());
    return 0;
}

/*
 * multiprocess.c - N worker processes on one port, supervised by a parent
 * that restarts a worker when it dies: how a single-threaded
 * connection-core server uses every core, and survives a crash in
 * application code.
 *
 * Design: every worker initialises its OWN Connection after fork(), with
 * reuse_port set, so each has its own listening socket (SO_REUSEPORT) and
 * the kernel spreads new connections across the workers.  The
 * alternative, one Connection_Init before fork(), is not an option here:
 * the children would share one epoll instance and one stop eventfd (an
 * epoll set belongs to the open file, not to the process), so a worker's
 * Connection_Stop or epoll_ctl would act on every worker's state.  With
 * one listener per worker, a worker that dies takes only its own listener
 * (and the connections queued on it) with it; the others keep serving.
 *
 * With --port 0 the first worker binds an ephemeral port and reports it
 * through a pipe; every other worker, and every restarted one, binds that
 * port.  The parent prints "listening on HOST:PORT" once all N workers
 * are listening.
 *
 * Routes (each worker): GET / -> 200 "worker PID\n"; GET /crash -> the
 * worker calls abort() (to show, and test, the restart); anything else ->
 * 404.
 *
 * Signals: SIGINT or SIGTERM to the parent -> SIGTERM to every worker
 * (each drains its in-flight responses: Connection_Stop from its signal
 * handler), the parent waits for all of them (SIGKILL after 15 s) and
 * exits 0, or 1 if a worker failed.  A worker that dies otherwise is
 * restarted at once, or after a one-second pause when it lived less than
 * a second (no fork loop when a worker cannot start).
 *
 * Options: --workers N (default 2, at most 64), --port N (default 8080),
 * --host H (default 127.0.0.1).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "connection.h"

#define MAX_WORKERS 64
#define STOP_GRACE_S 15 /* after this, workers that ignore SIGTERM get SIGKILL */

/* ---- worker ------------------------------------------------------------ */

static Connection conn; /* the worker's; static so its signal handler can reach it */

static void worker_on_signal(int sig)
{
    int saved = errno;

    (void)sig;
    (void)Connection_Stop(&conn);
    errno = saved;
}

static void worker_handler(const Request *req, Response *resp, void *user)
{
    const char *method = Request_Method(req, NULL);
    const char *path = Request_Path(req, NULL);
    char body[48];
    int n;

    (void)user;
    if (method && path && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
        if (strcmp(path, "/") == 0) {
            n = snprintf(body, sizeof body, "worker %ld\n", (long)getpid());
            (void)Response_AddHeader(resp, "Content-Type", "text/plain");
            (void)Response_Send(resp, body, (size_t)n);
            return;
        }
        if (strcmp(path, "/crash") == 0) {
            fprintf(stderr, "worker %ld: GET /crash, calling abort()\n", (long)getpid());
            abort();
        }
    }
    (void)Response_SetStatus(resp, 404);
    (void)Response_Send(resp, "Not Found", 9);
}

/*
 * Runs in the child: listen, report the bound port (2 bytes, host order)
 * on ready_fd, serve until SIGINT/SIGTERM (or the parent's death).  Never
 * returns.
 */
static void worker_main(const char *host, uint16_t port, int ready_fd, pid_t parent)
{
    ConnectionConfig cfg;
    struct sigaction sa;
    sigset_t none;
    uint16_t bound;
    int rc;

    /* The parent's handlers and blocked signals are inherited: install the
     * worker's own, but keep SIGINT/SIGTERM blocked until conn exists, so
     * a stop request that arrives during start-up is not lost. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = worker_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    /* A worker whose supervisor is gone (even by SIGKILL) stops as if the
     * supervisor had asked; the getppid() check closes the race with a
     * parent that died before prctl(). */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        _exit(1);

    ConnectionConfig_Default(&cfg);
    cfg.host = host;
    cfg.port = port;
    cfg.reuse_port = true;
    rc = Connection_InitWith(&conn, &cfg);
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "worker %ld: cannot listen on %s:%u: %s\n", (long)getpid(),
                host, (unsigned)port, Connection_StrError(rc));
        _exit(1);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* a pending stop is handled now */
    Connection_SetHandler(&conn, worker_handler, NULL);
    bound = (uint16_t)Connection_Port(&conn);
    if (write(ready_fd, &bound, sizeof bound) != (ssize_t)sizeof bound)
        _exit(1);
    close(ready_fd);

    rc = Connection_Run(&conn); /* returns after Connection_Stop and the drain */
    Connection_Destroy(&conn);
    _exit(rc == CONNECTION_OK ? 0 : 1);
}

/* ---- parent ------------------------------------------------------------ */

struct worker {
    pid_t pid; /* 0: slot empty */
    time_t started;
};

static struct worker workers[MAX_WORKERS];

/* Only there so SIGCHLD is never discarded; the parent takes its signals
 * with sigtimedwait() while they are blocked. */
static void parent_on_signal(int sig)
{
    (void)sig;
}

/* A SIGINT or SIGTERM already pending (and consumed), without waiting. */
static int stop_pending(const sigset_t *stop_sigs)
{
    struct timespec zero = {0, 0};
    int sig;

    while ((sig = sigtimedwait(stop_sigs, NULL, &zero)) < 0 && errno == EINTR)
        ;
    return sig == SIGINT || sig == SIGTERM;
}

/*
 * Forks one worker into slot i and waits until it listens (or dies).
 * Returns the bound port, or 0 on failure.
 */
static uint16_t spawn_worker(int i, const char *host, uint16_t port)
{
    pid_t parent = getpid();
    uint16_t bound = 0;
    int fds[2];
    pid_t pid;
    ssize_t n;

    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("pipe2");
        return 0;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid = fork();
    if (pid < 0) {
        perror("fork");
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    if (pid == 0) {
        close(fds[0]);
        worker_main(host, port, fds[1], parent);
    }
    close(fds[1]);
    workers[i].pid = pid;
    workers[i].started = time(NULL);
    /* The worker writes its port, or exits (EOF). Signals are blocked here,
     * so the read is not interrupted. */
    do {
        n = read(fds[0], &bound, sizeof bound);
    } while (n < 0 && errno == EINTR);
    close(fds[0]);
    if (n != (ssize_t)sizeof bound) {
        fprintf(stderr, "worker %ld did not start\n", (long)pid);
        return 0;
    }
    fprintf(stderr, "worker %ld listening (slot %d)\n", (long)pid, i);
    return bound;
}

static int slot_of(pid_t pid, int nworkers)
{
    int i;

    for (i = 0; i < nworkers; i++)
        if (workers[i].pid == pid)
            return i;
    return -1;
}

static void describe_exit(pid_t pid, int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "worker %ld exited with status %d", (long)pid, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "worker %ld killed by signal %d (%s)", (long)pid, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "worker %ld: status %d", (long)pid, status);
}

/* Stop every worker and reap them all; returns 0 if each exited 0. */
static int stop_workers(int nworkers)
{
    time_t deadline = time(NULL) + STOP_GRACE_S;
    int alive = 0, failed = 0, killed = 0;
    int i;

    for (i = 0; i < nworkers; i++) {
        if (workers[i].pid > 0) {
            kill(workers[i].pid, SIGTERM);
            alive++;
        }
    }
    while (alive > 0) {
        char what[128];
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: nobody left */
        }
        if (pid == 0) {
            struct timespec pause = {0, 10 * 1000000L};
            if (!killed && time(NULL) >= deadline) {
                for (i = 0; i < nworkers; i++)
                    if (workers[i].pid > 0)
                        kill(workers[i].pid, SIGKILL);
                killed = 1;
            }
            nanosleep(&pause, NULL);
            continue;
        }
        i = slot_of(pid, nworkers);
        if (i >= 0) {
            workers[i].pid = 0;
            alive--;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            describe_exit(pid, status, what, sizeof what);
            fprintf(stderr, "stopping: %s\n", what);
            failed = 1;
        }
    }
    return failed ? 1 : 0;
}

static int parse_args(int argc, char **argv, const char **host, long *port, long *nworkers)
{
    int i;

    for (i = 1; i < argc; i++) {
        long *num = NULL;
        long max = 0;

        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            *host = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            num = port;
            max = 65535;
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            num = nworkers;
            max = MAX_WORKERS;
        }
        if (num != NULL) {
            char *end;
            *num = strtol(argv[++i], &end, 10);
            if (*end == '\0' && *num >= 0 && *num <= max && (num != nworkers || *num > 0))
                continue;
            fprintf(stderr, "%s: bad value '%s' for %s\n", argv[0], argv[i], argv[i - 1]);
            return -1;
        }
        fprintf(stderr, "usage: %s [--workers N] [--host H] [--port N]\n", argv[0]);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port_arg = 8080, nworkers = 2;
    struct sigaction sa;
    sigset_t all, stop_sigs;
    int stopping = 0;
    uint16_t port;
    int i;

    if (parse_args(argc, argv, &host, &port_arg, &nworkers) != 0)
        return 2;

    /*
     * The parent keeps SIGINT, SIGTERM and SIGCHLD blocked and takes them
     * with sigtimedwait(): no handler races with the loop, and the
     * one-second timeout retries a restart that failed.
     */
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    all = stop_sigs;
    sigaddset(&all, SIGCHLD);
    sigprocmask(SIG_BLOCK, &all, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = parent_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);

    /* The first worker picks the port (when --port 0), the rest join it. */
    port = (uint16_t)port_arg;
    for (i = 0; i < nworkers; i++) {
        uint16_t bound = spawn_worker(i, host, port);
        if (bound == 0) {
            stop_workers((int)nworkers);
            return 1;
        }
        port = bound;
    }
    printf("listening on %s:%u\n", host, (unsigned)port);
    fflush(stdout);

    while (!stopping) {
        struct timespec one_second = {1, 0};
        int status, sig;
        pid_t pid;

        while (!stopping && (pid = waitpid(-1, &status, WNOHANG)) > 0) {
            char what[128];

            i = slot_of(pid, (int)nworkers);
            if (i < 0)
                continue;
            workers[i].pid = 0;
            describe_exit(pid, status, what, sizeof what);
            /* A Ctrl-C in a terminal signals the whole process group: the
             * workers stop on their own, and that is no reason to restart. */
            if (stop_pending(&stop_sigs)) {
                stopping = 1;
                break;
            }
            if (time(NULL) - workers[i].started < 1) {
                struct timespec pause = {1, 0};
                fprintf(stderr, "%s after less than 1 s; restarting in 1 s\n", what);
                nanosleep(&pause, NULL);
            } else {
                fprintf(stderr, "%s; restarting\n", what);
            }
            (void)spawn_worker(i, host, port);
        }
        /* A slot whose restart failed (fork error) is retried every second. */
        for (i = 0; i < nworkers && !stopping; i++)
            if (workers[i].pid == 0)
                (void)spawn_worker(i, host, port);
        if (stopping)
            break;
        sig = sigtimedwait(&all, NULL, &one_second);
        if (sig == SIGINT || sig == SIGTERM)
            stopping = 1;
    }

    fprintf(stderr, "stopping %ld workers\n", nworkers);
    return stop_workers((int)nworkers);
}

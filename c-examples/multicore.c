/*
 * multicore.c - one Connection per thread, all on one port: the
 * thread-per-core layout (what nginx does with worker processes, here with
 * threads in one process).
 *
 * Each thread has its own Connection, initialised with reuse_port so each
 * has its own listening socket (SO_REUSEPORT) and its own epoll loop; the
 * kernel spreads new connections across the listeners, and no connection
 * ever moves between threads, so nothing is shared and nothing is locked.
 * A Connection is used only by the thread that runs it, except for
 * Connection_Stop(), which any thread (or a signal handler) may call.
 *
 * With --port 0 the first Connection binds an ephemeral port and the rest
 * bind the same port.  Every Connection is initialised in the main thread
 * before any thread starts, so "listening on HOST:PORT" is printed once
 * all of them listen.
 *
 * Routes (as in server.c): GET / -> 200 "Hello, World!"; GET /big -> 1 MiB
 * of the same 64-byte pattern; HEAD on both; anything else -> 404.
 *
 * Options: --threads N (default: one per online CPU, at most 256),
 * --port N (default 8080), --host H (default 127.0.0.1).
 * SIGINT/SIGTERM -> Connection_Stop on every Connection; each thread's
 * Connection_Run drains and returns; main joins them, destroys every
 * Connection and exits 0.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connection.h"

#define MAX_THREADS 256
#define BIG_SIZE (1024u * 1024u)

static const char PATTERN[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";
#define PATTERN_LEN (sizeof PATTERN - 1)

static uint8_t big_body[BIG_SIZE]; /* filled before any thread starts; read-only after */

static Connection conns[MAX_THREADS];
/* How many of conns[] are initialised: the signal handler stops those. */
static volatile sig_atomic_t nconns;

static void on_signal(int sig)
{
    int saved = errno;
    int i;

    (void)sig;
    for (i = 0; i < nconns; i++)
        (void)Connection_Stop(&conns[i]); /* async-signal-safe, any thread */
    errno = saved;
}

static void handler(const Request *req, Response *resp, void *user)
{
    const char *method = Request_Method(req, NULL);
    const char *path = Request_Path(req, NULL);

    (void)user;
    if (method && path && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
        if (strcmp(path, "/") == 0) {
            (void)Response_AddHeader(resp, "Content-Type", "text/plain");
            (void)Response_Send(resp, "Hello, World!", 13);
            return;
        }
        if (strcmp(path, "/big") == 0) {
            (void)Response_AddHeader(resp, "Content-Type", "application/octet-stream");
            (void)Response_Send(resp, big_body, sizeof big_body);
            return;
        }
    }
    (void)Response_SetStatus(resp, 404);
    (void)Response_AddHeader(resp, "Content-Type", "text/plain");
    (void)Response_Send(resp, "Not Found", 9);
}

static void *run_thread(void *arg)
{
    Connection *c = arg;
    int rc = Connection_Run(c); /* until Connection_Stop, then drain */

    if (rc != CONNECTION_OK)
        fprintf(stderr, "Connection_Run: %s\n", Connection_StrError(rc));
    return (void *)(intptr_t)(rc == CONNECTION_OK ? 0 : 1);
}

static int parse_args(int argc, char **argv, const char **host, long *port, long *nthreads)
{
    int i;

    for (i = 1; i < argc; i++) {
        long *num = NULL;
        long min = 0, max = 0;
        char *end;

        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            *host = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            num = port;
            max = 65535;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            num = nthreads;
            min = 1;
            max = MAX_THREADS;
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--host H] [--port N]\n", argv[0]);
            return -1;
        }
        *num = strtol(argv[++i], &end, 10);
        if (*end != '\0' || *num < min || *num > max) {
            fprintf(stderr, "%s: bad value '%s' for %s\n", argv[0], argv[i], argv[i - 1]);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    pthread_t threads[MAX_THREADS];
    const char *host = "127.0.0.1";
    long port_arg = 8080, nthreads = sysconf(_SC_NPROCESSORS_ONLN);
    struct sigaction sa;
    sigset_t sigs, old;
    ConnectionConfig cfg;
    int started = 0, failed = 0;
    int i, rc;

    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > MAX_THREADS)
        nthreads = MAX_THREADS;
    if (parse_args(argc, argv, &host, &port_arg, &nthreads) != 0)
        return 2;

    for (i = 0; i < (int)BIG_SIZE; i++)
        big_body[i] = (uint8_t)PATTERN[(size_t)i % PATTERN_LEN];

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* Initialise every Connection here: the first picks the port. */
    ConnectionConfig_Default(&cfg);
    cfg.host = host;
    cfg.port = (uint16_t)port_arg;
    cfg.reuse_port = true;
    for (i = 0; i < nthreads; i++) {
        rc = Connection_InitWith(&conns[i], &cfg);
        if (rc != CONNECTION_OK) {
            fprintf(stderr, "%s: cannot listen on %s:%u: %s\n", argv[0], host,
                    (unsigned)cfg.port, Connection_StrError(rc));
            failed = 1;
            break;
        }
        Connection_SetHandler(&conns[i], handler, NULL);
        nconns = i + 1;
        if (i == 0)
            cfg.port = (uint16_t)Connection_Port(&conns[0]);
    }

    /* The threads block SIGINT/SIGTERM (they inherit this mask), so the
     * handler runs in the main thread, which only waits in pthread_join. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    for (i = 0; !failed && i < nthreads; i++) {
        rc = pthread_create(&threads[i], NULL, run_thread, &conns[i]);
        if (rc != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            failed = 1;
            break;
        }
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (!failed) {
        fprintf(stderr, "%ld threads\n", nthreads);
        printf("listening on %s:%u\n", host, (unsigned)cfg.port);
        fflush(stdout);
    } else {
        on_signal(SIGTERM); /* stop whatever already runs */
    }

    for (i = 0; i < started; i++) {
        void *res = NULL;
        pthread_join(threads[i], &res);
        if (res != NULL)
            failed = 1;
    }

    /* No handler may touch conns[] once they are destroyed. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    for (i = 0; i < nconns; i++)
        Connection_Destroy(&conns[i]);
    return failed ? 1 : 0;
}

/*
 * multicore.c - one Connection per thread, all on one port: the
 * thread-per-core layout (what nginx does with worker processes, here with
 * threads in one process).
 *
 * Each thread has its own Connection, initialised with reuse_port so each
 * has its own listening socket (SO_REUSEPORT) and its own epoll loop; the
 * kernel spreads new connections across the listeners, and no connection
 * ever moves between threads, so nothing is shared and nothing is locked.
 * Each thread initialises its own Connection, which makes it that
 * Connection's loop thread: the library refuses calls on it from any other
 * thread (CONNECTION_ERR_WRONG_THREAD), except Connection_Stop(), which
 * any thread (or a signal handler) may call.
 *
 * With --port 0 the first Connection binds an ephemeral port and the rest
 * bind the same port.  main starts the threads one at a time and waits
 * until each listens, so "listening on HOST:PORT" is printed once all of
 * them listen.
 *
 * Routes (as in server.c): GET / -> 200 "Hello, World!"; GET /big -> 1 MiB
 * of the same 64-byte pattern; HEAD on both; anything else -> 404.
 *
 * Options: --threads N (default: one per online CPU, at most 256),
 * --port N (default 8080), --host H (default 127.0.0.1).
 * SIGINT/SIGTERM -> Connection_Stop on every Connection; each thread's
 * Connection_Run drains and returns, the thread destroys its Connection;
 * main joins them and exits 0.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
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
/* How many of conns[] are initialised: the signal handler stops those.
 * Written by main only, after the thread reported (see `ready`). */
static volatile sig_atomic_t nconns;

/* What main hands a thread, and what the thread reports back. */
struct start {
    Connection *conn;
    const ConnectionConfig *cfg; /* read only before `ready` is posted */
    int rc;                      /* the thread's Connection_InitWith result */
    int port;                    /* the port it bound */
};

/* Posted by each thread once it listens (or failed to): main waits for it
 * before starting the next thread. */
static sem_t ready;

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
    struct start *st = arg;
    Connection *c = st->conn;
    int rc;

    /* Initialised here, so this thread is the Connection's loop thread. */
    st->rc = Connection_InitWith(c, st->cfg);
    if (st->rc == CONNECTION_OK) {
        Connection_SetHandler(c, handler, NULL);
        st->port = Connection_Port(c);
    }
    sem_post(&ready); /* main reads *st and conns[] after this */
    if (st->rc != CONNECTION_OK)
        return (void *)1;

    rc = Connection_Run(c); /* until Connection_Stop, then drain */
    if (rc != CONNECTION_OK)
        fprintf(stderr, "Connection_Run: %s\n", Connection_StrError(rc));
    /* A Stop from the signal handler after this is harmless: it returns
     * CONNECTION_ERR_NOT_INITIALIZED and writes nothing. */
    Connection_Destroy(c);
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
    struct start starts[MAX_THREADS];
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

    /* The threads block SIGINT/SIGTERM (they inherit this mask), so the
     * handler runs in the main thread, which only waits (in sem_wait, then
     * in pthread_join).  It stays blocked here too until every thread has
     * reported, so the handler never reads a Connection being initialised. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    if (sem_init(&ready, 0, 0) != 0) {
        perror("sem_init");
        return 1;
    }

    /* One thread at a time: each initialises its Connection; the first
     * picks the port the others then bind. */
    ConnectionConfig_Default(&cfg);
    cfg.host = host;
    cfg.port = (uint16_t)port_arg;
    cfg.reuse_port = true;
    for (i = 0; i < nthreads; i++) {
        starts[i].conn = &conns[i];
        starts[i].cfg = &cfg;
        starts[i].rc = CONNECTION_ERR_NOT_INITIALIZED;
        starts[i].port = 0;
        rc = pthread_create(&threads[i], NULL, run_thread, &starts[i]);
        if (rc != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            failed = 1;
            break;
        }
        started++;
        while (sem_wait(&ready) != 0 && errno == EINTR)
            ;
        if (starts[i].rc != CONNECTION_OK) {
            fprintf(stderr, "%s: cannot listen on %s:%u: %s\n", argv[0], host,
                    (unsigned)cfg.port, Connection_StrError(starts[i].rc));
            failed = 1;
            break;
        }
        nconns = i + 1;
        if (i == 0)
            cfg.port = (uint16_t)starts[0].port;
    }

    if (!failed) {
        fprintf(stderr, "%ld threads\n", nthreads);
        printf("listening on %s:%u\n", host, (unsigned)cfg.port);
        fflush(stdout);
    } else {
        on_signal(SIGTERM); /* stop whatever already runs */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    for (i = 0; i < started; i++) {
        void *res = NULL;
        pthread_join(threads[i], &res);
        if (res != NULL)
            failed = 1;
    }
    sem_destroy(&ready);
    return failed ? 1 : 0;
}

/*
 * workers.c - answers computed by a pool of worker threads.
 *
 * The handler does not answer: it keeps the response (Response_Defer),
 * hands a job to a pool of --threads worker threads and returns, so the
 * loop serves other clients while the job runs.  A worker computes the
 * answer and gives the job back to the loop thread with Connection_Post
 * (the one call a worker may make); the posted task answers on the loop
 * thread and releases the response.  Workers finish in any order; the
 * library still answers the pipelined requests of one connection in order.
 *
 * Routes (GET or HEAD):
 *   /                        "Hello, World!", from a worker
 *   /work?n=K&sleep_ms=S     "fib(K) = V\n", V the K-th Fibonacci number
 *                            mod 2^64 (K <= 100000000), after the worker
 *                            slept S ms (<= 10000; default 0); headers
 *                            X-Job (dispatch order) and X-Done (the order
 *                            in which workers finished)
 *   /stats                   the example's counts, answered at once:
 *                            "dispatched D, in flight F, queued Q, ..."
 *   bad n or sleep_ms: 400; another path: 404; another method: 405.
 * At most --max-pending jobs are in flight (queued, computing or posted
 * back); beyond that the handler answers 503 at once.
 *
 * Who owns a job: exactly one party at a time, handed over only here:
 *   on_request (loop thread) --queue_push--> the pool's queue
 *   --queue_pop--> one worker --Connection_Post--> the library's post queue
 *   --> job_done(conn, job, cancelled) on the loop thread, the only place
 *   a job is freed (after Response_Release).
 * Jobs still queued when the workers stop go straight to job_done(.., 1).
 * on_close (the response's cleanup, loop thread) does not own the job: it
 * only marks it gone, and the library never calls it after
 * Response_Release, so it never sees a freed job.  `gone` is read and
 * written on the loop thread only.
 *
 * SIGINT or SIGTERM: Connection_Stop; Process drains (--drain-timeout-ms)
 * and returns; the workers finish the job in hand and exit; the loop thread
 * ends the jobs left in the queue; Connection_Destroy calls the posted tasks
 * that never ran with cancelled = 1; the counts go to stderr; exit 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connection.h"

#define MAX_THREADS 64

enum { JOB_HELLO, JOB_FIB };

struct job {
    struct job *next;     /* in the pool's queue */
    Response *resp;       /* deferred; released once, in job_done */
    int kind;             /* JOB_HELLO or JOB_FIB */
    uint64_t n;           /* /work?n= */
    unsigned sleep_ms;    /* /work?sleep_ms= */
    uint64_t dispatched;  /* dispatch order (loop thread) */
    uint64_t result;      /* written by the worker */
    uint64_t done;        /* finish order, written under pool.lock */
    int gone;             /* loop thread only: the response was closed */
};

static Connection conn; /* file scope for the signal handler */

static struct {
    Connection conn;      /* a copy of the handle, for Connection_Post */
    pthread_mutex_t lock; /* guards head, tail, stopping, finished */
    pthread_cond_t ready;
    struct job *head, *tail;
    int stopping;
    uint64_t finished;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .ready = PTHREAD_COND_INITIALIZER};

/* Loop thread only. */
static unsigned long max_pending = 1024;
static unsigned long inflight; /* jobs not yet ended by job_done */
static uint64_t dispatched, answered, gone_freed, closed, cancelled, rejected;

static void reply(Response *resp, int status, const char *body)
{
    Response_SetStatus(resp, status);
    Response_AddHeader(resp, "Content-Type", "text/plain");
    Response_Send(resp, body, strlen(body));
}

/* ----- the pool ---------------------------------------------------------- */

static void queue_push(struct job *job)
{
    pthread_mutex_lock(&pool.lock);
    job->next = NULL;
    if (pool.tail != NULL)
        pool.tail->next = job;
    else
        pool.head = job;
    pool.tail = job;
    pthread_mutex_unlock(&pool.lock);
    /* After the unlock: a worker woken here may run at once (on this CPU
     * too) and would otherwise block on the mutex the loop still holds. */
    pthread_cond_signal(&pool.ready);
}

/* The next job, or NULL once the pool is stopping (queued jobs stay). */
static struct job *queue_pop(void)
{
    struct job *job = NULL;

    pthread_mutex_lock(&pool.lock);
    while (pool.head == NULL && !pool.stopping)
        pthread_cond_wait(&pool.ready, &pool.lock);
    if (!pool.stopping) {
        job = pool.head;
        pool.head = job->next;
        if (pool.head == NULL)
            pool.tail = NULL;
    }
    pthread_mutex_unlock(&pool.lock);
    return job;
}

static uint64_t fibonacci(uint64_t n)
{
    uint64_t a = 0, b = 1, t;

    while (n-- > 0) {
        t = a + b; /* unsigned: wraps mod 2^64 */
        a = b;
        b = t;
    }
    return a;
}

static void job_done(Connection *c, void *arg, int was_cancelled);

static void *worker_main(void *arg)
{
    struct job *job;
    int rc;

    (void)arg;
    while ((job = queue_pop()) != NULL) {
        if (job->sleep_ms > 0) {
            struct timespec ts = {job->sleep_ms / 1000, (long)(job->sleep_ms % 1000) * 1000000L};

            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
        }
        if (job->kind == JOB_FIB)
            job->result = fibonacci(job->n);
        /* job_done takes this lock before reading the job: what the worker
         * wrote is visible to the loop thread (and a race detector sees
         * why, whatever the library's post queue uses inside). */
        pthread_mutex_lock(&pool.lock);
        job->done = ++pool.finished;
        pthread_mutex_unlock(&pool.lock);
        /* From here the job is the library's until job_done runs.  The post
         * queue holds max_pending_posts = max_pending >= the jobs in flight,
         * and main() joins the workers before Connection_Destroy, so no
         * error can come back. */
        rc = Connection_Post(&pool.conn, job_done, job);
        if (rc != CONNECTION_OK) {
            fprintf(stderr, "Connection_Post: %s\n", Connection_StrError(rc));
            abort();
        }
    }
    return NULL;
}

/* ----- the loop thread --------------------------------------------------- */

/* The posted task: the end of every job, run or cancelled. */
static void job_done(Connection *c, void *arg, int was_cancelled)
{
    struct job *job = arg;
    char body[64], num[24];

    (void)c;
    pthread_mutex_lock(&pool.lock); /* pairs with the worker's unlock */
    pthread_mutex_unlock(&pool.lock);
    if (was_cancelled) {
        cancelled++;
    } else if (job->gone) {
        gone_freed++; /* the client left: nothing to answer */
    } else {
        if (job->kind == JOB_HELLO) {
            reply(job->resp, 200, "Hello, World!");
        } else {
            snprintf(num, sizeof num, "%" PRIu64, job->dispatched);
            Response_AddHeader(job->resp, "X-Job", num);
            snprintf(num, sizeof num, "%" PRIu64, job->done);
            Response_AddHeader(job->resp, "X-Done", num);
            snprintf(body, sizeof body, "fib(%" PRIu64 ") = %" PRIu64 "\n", job->n, job->result);
            reply(job->resp, 200, body);
        }
        answered++;
    }
    Response_Release(job->resp);
    inflight--;
    free(job);
}

/* The deferred response's cleanup: the client is gone (or the response
 * timed out, or the server is shutting down). The job is still owned by
 * the pool, a worker or the post queue; job_done will free it. */
static void on_close(void *user, enum ConnectionCloseReason reason)
{
    struct job *job = user;

    (void)reason;
    job->gone = 1;
    closed++;
}

/* "name=" in query as a number up to max: 1 found, 0 absent, -1 bad. */
static int query_number(const char *query, const char *name, uint64_t max, uint64_t *out)
{
    size_t len = strlen(name);
    const char *p = query;
    char *end;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, len) == 0 && p[len] == '=') {
            p += len + 1;
            if (*p < '0' || *p > '9')
                return -1;
            errno = 0;
            *out = strtoull(p, &end, 10);
            if (errno != 0 || *out > max || (*end != '\0' && *end != '&'))
                return -1;
            return 1;
        }
        p = strchr(p, '&');
        if (p != NULL)
            p++;
    }
    return 0;
}

/* The ConnectionHandler: runs inside Connection_Process() for each request. */
static void on_request(const Request *req, Response *resp, void *user)
{
    const char *method = Request_Method(req, NULL);
    const char *path = Request_Path(req, NULL);
    const char *query = Request_Query(req, NULL);
    uint64_t n = 0, sleep_ms = 0;
    struct job *job;
    int kind;

    (void)user;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        Response_AddHeader(resp, "Allow", "GET, HEAD");
        reply(resp, 405, "Method Not Allowed");
        return;
    }
    if (strcmp(path, "/stats") == 0) {
        char text[256];
        unsigned long queued = 0;

        pthread_mutex_lock(&pool.lock);
        for (job = pool.head; job != NULL; job = job->next)
            queued++;
        pthread_mutex_unlock(&pool.lock);
        snprintf(text, sizeof text,
                 "dispatched %" PRIu64 ", in flight %lu, queued %lu, answered %" PRIu64
                 ", closed %" PRIu64 ", freed after close %" PRIu64 ", rejected %" PRIu64 "\n",
                 dispatched, inflight, queued, answered, closed, gone_freed, rejected);
        reply(resp, 200, text);
        return;
    }
    if (strcmp(path, "/") == 0) {
        kind = JOB_HELLO;
    } else if (strcmp(path, "/work") == 0) {
        kind = JOB_FIB;
        if (query_number(query, "n", 100000000, &n) < 0 ||
            query_number(query, "sleep_ms", 10000, &sleep_ms) < 0) {
            reply(resp, 400, "Bad Request: n <= 100000000, sleep_ms <= 10000\n");
            return;
        }
    } else {
        reply(resp, 404, "Not Found");
        return;
    }
    if (inflight >= max_pending || (job = calloc(1, sizeof *job)) == NULL) {
        rejected++;
        reply(resp, 503, "Service Unavailable: too many jobs\n");
        return;
    }
    job->resp = resp;
    job->kind = kind;
    job->n = n;
    job->sleep_ms = (unsigned)sleep_ms;
    if (Response_Defer(resp, on_close, job) != CONNECTION_OK) {
        free(job); /* not deferred: the library answers 500 */
        return;
    }
    job->dispatched = ++dispatched;
    inflight++;
    queue_push(job); /* the job is the pool's now */
}

static void on_signal(int sig)
{
    int saved_errno = errno;

    (void)sig;
    Connection_Stop(&conn);
    errno = saved_errno;
}

static const char usage[] =
    "usage: %s [--host ADDR] [--port N] [--threads N] [--max-pending N]\n"
    "          [--drain-timeout-ms N]\n"
    "defaults: 127.0.0.1, 8080 (0: any free port), 4 threads, 1024 jobs,\n"
    "          then ConnectionConfig_Default\n";

static const struct option options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"threads", required_argument, NULL, 't'},
    {"max-pending", required_argument, NULL, 'm'},
    {"drain-timeout-ms", required_argument, NULL, 'd'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* An option's value: a plain decimal number in [min, max], or exit 2. */
static unsigned long number(const char *s, unsigned long min, unsigned long max)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10); /* ERANGE: ULLONG_MAX */

    if (*s < '0' || *s > '9' || *end != '\0' || n < min || n > max) {
        fprintf(stderr, "bad value '%s' (want a number from %lu to %lu)\n", s, min, max);
        exit(2);
    }
    return (unsigned long)n;
}

int main(int argc, char **argv)
{
    ConnectionConfig cfg;
    struct sigaction sa;
    pthread_t threads[MAX_THREADS];
    unsigned long nthreads = 4, i;
    struct job *job;
    uint64_t left_in_queue = 0;
    int opt, rc;

    ConnectionConfig_Default(&cfg);
    cfg.host = "127.0.0.1";
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'H': cfg.host = optarg; break;
        case 'p': cfg.port = (uint16_t)number(optarg, 0, UINT16_MAX); break;
        case 't': nthreads = number(optarg, 1, MAX_THREADS); break;
        case 'm': max_pending = number(optarg, 1, 16777216); break;
        case 'd': cfg.drain_timeout_ms = (uint32_t)number(optarg, 0, UINT32_MAX); break;
        case 'h': printf(usage, argv[0]); return 0;
        default: fprintf(stderr, usage, argv[0]); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    cfg.max_pending_posts = (uint32_t)max_pending; /* room for every job */

    rc = Connection_InitWith(&conn, &cfg);
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "cannot listen on %s:%u: %s\n", cfg.host, (unsigned)cfg.port,
                Connection_StrError(rc));
        return 1;
    }
    Connection_SetHandler(&conn, on_request, NULL);
    pool.conn = conn; /* copied before the workers start */

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* The workers inherit a mask without SIGINT/SIGTERM: signals go to
     * the loop thread. */
    sigprocmask(SIG_BLOCK, &sa.sa_mask, NULL);
    for (i = 0; i < nthreads; i++) {
        if (pthread_create(&threads[i], NULL, worker_main, NULL) != 0) {
            fprintf(stderr, "cannot start worker thread %lu\n", i);
            nthreads = i;
            on_signal(SIGTERM);
            break;
        }
    }
    sigprocmask(SIG_UNBLOCK, &sa.sa_mask, NULL);

    printf("listening on %s:%d\n", cfg.host, Connection_Port(&conn));
    fflush(stdout);

    while ((rc = Connection_Process(&conn)) == CONNECTION_OK)
        ;

    sigprocmask(SIG_BLOCK, &sa.sa_mask, NULL); /* conn is about to go away */
    pthread_mutex_lock(&pool.lock);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.ready);
    pthread_mutex_unlock(&pool.lock);
    for (i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL); /* each posts the job in hand first */
    while ((job = pool.head) != NULL) { /* no worker left: no lock needed */
        pool.head = job->next;
        left_in_queue++;
        job_done(&conn, job, 1);
    }
    pool.tail = NULL;
    Connection_Destroy(&conn); /* job_done(.., 1) for posts not yet run */

    fprintf(stderr,
            "workers: dispatched %" PRIu64 ", answered %" PRIu64 ", closed %" PRIu64
            ", freed after close %" PRIu64 ", cancelled in queue %" PRIu64
            ", cancelled posts %" PRIu64 ", rejected %" PRIu64 ", in flight %lu\n",
            dispatched, answered, closed, gone_freed, left_in_queue, cancelled - left_in_queue,
            rejected, inflight);
    if (rc != CONNECTION_STOPPED) {
        fprintf(stderr, "Connection_Process: %s\n", Connection_StrError(rc));
        return 1;
    }
    return 0;
}
